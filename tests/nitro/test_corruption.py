"""Every good document gets its corruptions (STYLE.md habit 9).

For each real fixture and for emulated documents (both payload framings), each kind of damage
below must be refused with the check it names. Damage that keeps the original signature shows
that every byte is covered; damage that needs a fresh signature is made with a self-made chain
("forged": the document re-signed by keys we hold), trusted explicitly, so that the chain and
policy checks are each reached on their own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID, ObjectIdentifier

from zcbench.nitro import (
    MAX_CLOCK_SKEW,
    AttestationDocument,
    DevCA,
    NsmEmulator,
    check_attestation,
)
from zcbench.nitro import parse_document as parse

NOW = dt.datetime(2026, 2, 3, 4, 5, 6, 789000, tzinfo=dt.UTC)
PROTECTED = bytes.fromhex("a1013822")
REAL = [1, 2, 3, 4]


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    doc: AttestationDocument
    trust: str | Path
    at: dt.datetime
    allow_debug: bool
    expected_pcrs: dict[int, bytes]
    emulated: bool
    other_leaf: bytes = b""
    kwargs: dict[str, object] = field(default_factory=dict)


# -- cases -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev_ca(tmp_path_factory: pytest.TempPathFactory) -> DevCA:
    return DevCA.load_or_create(tmp_path_factory.mktemp("devca") / "devca", now=NOW)


@pytest.fixture(autouse=True)
def _dev_root_in_home(zcbench_home: Path, dev_ca: DevCA) -> None:
    # trust="dev" reads the home's root; point it at the module's CA.
    (zcbench_home / "devca").mkdir(mode=0o700)
    (zcbench_home / "devca" / "root.pem").write_bytes(dev_ca.root_pem.read_bytes())


def _case(name: str, data: bytes, trust: str, emulated: bool) -> Case:
    doc = parse(data)
    debug = not any(doc.pcrs[0])
    return Case(
        name=name,
        data=data,
        doc=doc,
        trust=trust,
        at=doc.time,
        allow_debug=debug,
        expected_pcrs={i: doc.pcrs[i] for i in (0, 1, 2)},
        emulated=emulated,
    )


@pytest.fixture(scope="module")
def cases(dev_ca: DevCA) -> dict[str, Case]:
    vectors = Path(__file__).parents[1] / "vectors" / "nitro"
    out: dict[str, Case] = {}
    for n in REAL:
        out[f"doc_{n}"] = _case(f"doc_{n}", (vectors / f"doc_{n}.cbor").read_bytes(), "aws", False)
    pcrs = {0: b"\xa0" * 48, 1: b"\xa1" * 48, 2: b"\xa2" * 48, 8: b"\xa8" * 48}
    for name, indefinite in (("emulated_definite", False), ("emulated_indefinite", True)):
        emulator = NsmEmulator(pcrs, dev_ca, clock=lambda: NOW, indefinite_payload=indefinite)
        data = emulator.attestation(nonce=b"\x01" * 32, user_data=b"ud", public_key=b"pk")
        out[name] = _case(name, data, "dev", True)
    # "a certificate from another document": another real one, or another emulated one
    # (same development CA, so only the document signature can tell).
    names = list(out)
    for i, name in enumerate(names):
        emulated = out[name].emulated
        others = [n for n in names if out[n].emulated == emulated and n != name]
        other = others[i % len(others)]
        out[name] = replace(out[name], other_leaf=out[other].doc.certificate)
    return out


CASE_NAMES = [f"doc_{n}" for n in REAL] + ["emulated_definite", "emulated_indefinite"]


def _check(case: Case, data: bytes | None = None, **overrides: object) -> str | None:
    kwargs: dict[str, object] = {
        "trust": case.trust,
        "at": case.at,
        "allow_debug": case.allow_debug,
        "expected_pcrs": case.expected_pcrs,
    }
    kwargs.update(overrides)
    report = check_attestation(case.data if data is None else data, **kwargs)  # type: ignore[arg-type]
    return report.failed_check


# -- building damaged documents ------------------------------------------------------------


def _fields(case: Case) -> dict[str, object]:
    fields = cbor2.loads(case.doc.payload)
    assert isinstance(fields, dict)
    return fields


def _payload(fields: dict[str, object], *, indefinite: bool = False) -> bytes:
    body = cbor2.dumps(fields)
    return b"\xbf" + body[1:] + b"\xff" if indefinite else body


def _wrap(
    payload: bytes, signature: bytes, protected: bytes = PROTECTED, unprot: object = None
) -> bytes:
    return cbor2.dumps([protected, {} if unprot is None else unprot, payload, signature])


def _same_signature(case: Case, payload: bytes) -> bytes:
    return _wrap(payload, case.doc.signature)


def _flip(blob: bytes, needle: bytes, offset: int = -1) -> bytes:
    at = blob.index(needle) + (offset % len(needle))
    return blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1 :]


def _raw_sign(key: ec.EllipticCurvePrivateKey, payload: bytes) -> bytes:
    tbs = cbor2.dumps(["Signature1", PROTECTED, b"", payload])
    r, s = decode_dss_signature(key.sign(tbs, ec.ECDSA(hashes.SHA384())))
    return r.to_bytes(48, "big") + s.to_bytes(48, "big")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _usage(*, sign: bool, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class Forge:
    """Knobs of a self-made chain; the defaults give a chain every check accepts."""

    leaf_ca: bool = False
    leaf_digital_signature: bool = True
    leaf_curve: type[ec.EllipticCurve] = ec.SECP384R1
    leaf_hash: type[hashes.HashAlgorithm] = hashes.SHA384
    leaf_unknown_critical: bool = False
    leaf_expired: bool = False
    instance_cert_sign: bool = True
    instance_is_ca: bool = True
    extra_ca_below_instance: bool = False
    real_root_in_bundle: bool = False
    bundle_root_from_doc: bool = False
    leaf_cert_sign_without_ca: bool = False
    leaf_tbs_says_sha256: bool = False
    leaf_validity: tuple[dt.timedelta, dt.timedelta] | None = None  # around the case's time


_SHA384_OID = bytes.fromhex("06082a8648ce3d040303")
_SHA256_OID = bytes.fromhex("06082a8648ce3d040302")


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _der_items(data: bytes) -> list[bytes]:
    """The elements inside one DER SEQUENCE, each whole (tag, length, content)."""
    out, pos = [], 2 + (data[1] & 0x7F if data[1] & 0x80 else 0)
    while pos < len(data):
        length, start = data[pos + 1], pos + 2
        if length & 0x80:
            count = length & 0x7F
            length, start = int.from_bytes(data[start : start + count], "big"), start + count
        out.append(data[pos : start + length])
        pos = start + length
    return out


def _tbs_algorithm_sha256(cert_der: bytes, issuer_key: ec.EllipticCurvePrivateKey) -> bytes:
    """``cert_der`` whose TBS names ecdsa-with-SHA256 while its outer algorithm stays SHA-384,
    re-signed over the new TBS with SHA-384 (what the outer field says): RFC 5280 4.1.1.2."""
    tbs, outer_algorithm, _signature = _der_items(cert_der)
    assert _SHA384_OID in tbs
    tbs = tbs.replace(_SHA384_OID, _SHA256_OID, 1)
    signature = issuer_key.sign(tbs, ec.ECDSA(hashes.SHA384()))
    return _der(0x30, tbs + outer_algorithm + _der(0x03, b"\x00" + signature))


def _forge(
    case: Case, tmp: Path, knobs: Forge, fields: dict[str, object] | None = None
) -> tuple[bytes, Path]:
    """The case's payload (or ``fields``) re-signed under a self-made chain; and its root PEM."""
    at = case.at.replace(microsecond=0)
    start, end = at - dt.timedelta(days=1), at + dt.timedelta(days=1)

    def cert(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
        *,
        ca: bool,
        path_len: int | None = None,
        usage: x509.KeyUsage,
        hash_: hashes.HashAlgorithm | None = None,
        validity: tuple[dt.datetime, dt.datetime] = (start, end),
        unknown_critical: bool = False,
    ) -> bytes:
        issuer_name, issuer_key = issuer or (subject, key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(_name(issuer_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
            .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len), critical=True)
            .add_extension(usage, critical=ca)
        )
        if unknown_critical:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"),
                critical=True,
            )
        return builder.sign(issuer_key, hash_ or hashes.SHA384()).public_bytes(
            serialization.Encoding.DER
        )

    keys = {
        n: ec.generate_private_key(ec.SECP384R1()) for n in ("root", "reg", "zon", "ins", "ext")
    }
    ca_usage = _usage(sign=True, cert_sign=True)
    root = cert("forged root", keys["root"], None, ca=True, usage=ca_usage)
    reg = cert(
        "forged regional",
        keys["reg"],
        ("forged root", keys["root"]),
        ca=True,
        path_len=2,
        usage=ca_usage,
    )
    zon = cert(
        "forged zonal",
        keys["zon"],
        ("forged regional", keys["reg"]),
        ca=True,
        path_len=1,
        usage=ca_usage,
    )
    ins = cert(
        "forged instance",
        keys["ins"],
        ("forged zonal", keys["zon"]),
        ca=knobs.instance_is_ca,
        path_len=0 if knobs.instance_is_ca else None,
        usage=_usage(sign=False, cert_sign=knobs.instance_cert_sign),
    )
    bundle = [root, reg, zon, ins]
    leaf_issuer = ("forged instance", keys["ins"])
    if knobs.extra_ca_below_instance:
        bundle.append(
            cert("forged extra", keys["ext"], leaf_issuer, ca=True, path_len=None, usage=ca_usage)
        )
        leaf_issuer = ("forged extra", keys["ext"])
    leaf_key = ec.generate_private_key(knobs.leaf_curve())
    validity = (at - dt.timedelta(seconds=3), at + dt.timedelta(hours=3))
    if knobs.leaf_expired:
        validity = (at - dt.timedelta(hours=5), at - dt.timedelta(hours=2))
    if knobs.leaf_validity is not None:
        validity = (at + knobs.leaf_validity[0], at + knobs.leaf_validity[1])
    leaf = cert(
        "forged leaf",
        leaf_key,
        leaf_issuer,
        ca=knobs.leaf_ca,
        usage=_usage(
            sign=knobs.leaf_digital_signature,
            cert_sign=knobs.leaf_ca or knobs.leaf_cert_sign_without_ca,
        ),
        hash_=knobs.leaf_hash(),
        validity=validity,
        unknown_critical=knobs.leaf_unknown_critical,
    )
    if knobs.leaf_tbs_says_sha256:
        leaf = _tbs_algorithm_sha256(leaf, keys["ext" if knobs.extra_ca_below_instance else "ins"])
    if knobs.real_root_in_bundle:
        bundle[0] = case.doc.cabundle[0]
    fields = dict(fields if fields is not None else _fields(case))
    fields["certificate"] = leaf
    fields["cabundle"] = bundle
    payload = _payload(fields, indefinite=case.doc.indefinite)
    tbs = cbor2.dumps(["Signature1", PROTECTED, b"", payload])
    r, s = decode_dss_signature(leaf_key.sign(tbs, ec.ECDSA(hashes.SHA384())))
    width = 48  # P-256 values padded: the format, not the curve, fixes the width
    signature = r.to_bytes(width, "big") + s.to_bytes(width, "big")
    pem = tmp / f"forged-{hashlib.sha256(root).hexdigest()[:12]}.pem"
    pem.write_bytes(x509.load_der_x509_certificate(root).public_bytes(serialization.Encoding.PEM))
    return _wrap(payload, signature), pem


# -- the kinds of damage ----------------------------------------------------------------------

Outcome = tuple[bytes, dict[str, object]]
Damage = Callable[[Case, Path], Outcome]
KINDS: dict[str, tuple[Damage, str | Callable[[Case], str]]] = {}


def kind(name: str, expect: str | Callable[[Case], str]) -> Callable[[Damage], Damage]:
    def register(fn: Damage) -> Damage:
        KINDS[name] = (fn, expect)
        return fn

    return register


def _keep(data: bytes) -> Outcome:
    return data, {}


# Flipped bytes in each payload field, the original signature kept.
@kind("flip_module_id", "signature")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(_same_signature(c, _flip(c.doc.payload, c.doc.module_id.encode())))


@kind("flip_digest", "schema")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(_same_signature(c, _flip(c.doc.payload, b"SHA384")))


@kind("flip_timestamp", "signature")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(_same_signature(c, _flip(c.doc.payload, c.doc.timestamp.to_bytes(8, "big"))))


@kind("flip_pcr0", "signature")
def _(c: Case, _t: Path) -> Outcome:
    needle = b"\x00\x58\x30" + c.doc.pcrs[0]  # key 0, bstr(48), value
    return _keep(_same_signature(c, _flip(c.doc.payload, needle)))


@kind("flip_pcr4", "signature")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(_same_signature(c, _flip(c.doc.payload, b"\x04\x58\x30" + c.doc.pcrs[4])))


@kind("flip_leaf_certificate_signature", "chain")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(_same_signature(c, _flip(c.doc.payload, c.doc.certificate)))


@kind("flip_intermediate_signature", "chain")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(_same_signature(c, _flip(c.doc.payload, c.doc.cabundle[2])))


@kind("flip_bundle_root", "root")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(_same_signature(c, _flip(c.doc.payload, c.doc.cabundle[0])))


def _flip_or_set(c: Case, name: str) -> Outcome:
    value = getattr(c.doc, name)
    if value is not None:
        # The field with its key: a short value ("pk") may also occur inside a certificate.
        needle = cbor2.dumps(name) + cbor2.dumps(value)
        return _keep(_same_signature(c, _flip(c.doc.payload, needle)))
    fields = _fields(c)
    fields[name] = b"x"
    return _keep(_same_signature(c, _payload(fields, indefinite=c.doc.indefinite)))


@kind("flip_public_key", "signature")
def _(c: Case, _t: Path) -> Outcome:
    return _flip_or_set(c, "public_key")


@kind("flip_user_data", "signature")
def _(c: Case, _t: Path) -> Outcome:
    return _flip_or_set(c, "user_data")


@kind("flip_nonce", "signature")
def _(c: Case, _t: Path) -> Outcome:
    return _flip_or_set(c, "nonce")


@kind("flip_signature", "signature")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(_flip(c.data, c.doc.signature, 10))


@kind("signature_95_bytes", "signature")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(_wrap(c.doc.payload, c.doc.signature[:95]))


@kind("signature_r_zero", "signature")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(_wrap(c.doc.payload, bytes(48) + c.doc.signature[48:]))


@kind("algorithm_es256_header", "algorithm")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(_wrap(c.doc.payload, c.doc.signature, protected=cbor2.dumps({1: -7})))


@kind("algorithm_header_extra_field", "algorithm")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(_wrap(c.doc.payload, c.doc.signature, protected=cbor2.dumps({1: -35, 4: b"k"})))


@kind("unprotected_header_not_empty", "schema")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(_wrap(c.doc.payload, c.doc.signature, unprot={4: b"kid"}))


@kind("tag_other_than_18", "decode")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(b"\xd8\x62" + c.data)  # tag 98, COSE_Sign


@kind("trailing_bytes", "decode")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(c.data + b"\x00")


@kind("truncated", "decode")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(c.data[:-1])


@kind("envelope_of_three", "schema")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(cbor2.dumps([PROTECTED, {}, c.doc.payload]))


@kind("duplicate_payload_key", "decode")
def _(c: Case, _t: Path) -> Outcome:
    p = c.doc.payload
    extra = cbor2.dumps("nonce") + b"\xf6"
    indefinite = p[0] == 0xBF
    payload = p[:-1] + extra + b"\xff" if indefinite else bytes([p[0] + 1]) + p[1:] + extra
    return _keep(_same_signature(c, payload))


@kind("duplicate_pcr_index", "decode")
def _(c: Case, _t: Path) -> Outcome:
    p = c.doc.payload
    at = p.index(b"\x64pcrs") + 5
    assert p[at] == 0xB0  # map(16)
    dup = b"\x00\x58\x30" + c.doc.pcrs[0]
    payload = p[:at] + b"\xb1" + dup + p[at + 1 :]
    return _keep(_same_signature(c, payload))


@kind("unknown_payload_key", "schema")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["extra"] = b""
    return _keep(_same_signature(c, _payload(fields)))


@kind("missing_cabundle", "schema")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    del fields["cabundle"]
    return _keep(_same_signature(c, _payload(fields)))


@kind("empty_cabundle", "schema")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["cabundle"] = []
    return _keep(_same_signature(c, _payload(fields)))


@kind("certificate_null", "schema")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["certificate"] = None
    return _keep(_same_signature(c, _payload(fields)))


@kind("timestamp_as_text", "schema")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["timestamp"] = str(c.doc.timestamp)
    return _keep(_same_signature(c, _payload(fields)))


@kind("timestamp_as_float", "decode")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["timestamp"] = float(c.doc.timestamp)
    return _keep(_same_signature(c, _payload(fields)))


@kind("timestamp_zero", "schema")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["timestamp"] = 0
    return _keep(_same_signature(c, _payload(fields)))


@kind("pcrs_as_array", "schema")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["pcrs"] = list(c.doc.pcrs.values())
    return _keep(_same_signature(c, _payload(fields)))


@kind("pcr_47_bytes", "schema")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["pcrs"] = {**c.doc.pcrs, 3: bytes(47)}
    return _keep(_same_signature(c, _payload(fields)))


@kind("pcr_index_32", "schema")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["pcrs"] = {**c.doc.pcrs, 32: bytes(48)}
    return _keep(_same_signature(c, _payload(fields)))


@kind("module_id_empty", "schema")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["module_id"] = ""
    return _keep(_same_signature(c, _payload(fields)))


@kind("module_id_not_utf8", "decode")
def _(c: Case, _t: Path) -> Outcome:
    p = c.doc.payload
    at = p.index(c.doc.module_id.encode())
    return _keep(_same_signature(c, p[:at] + b"\xff" + p[at + 1 :]))


@kind("oversize_user_data", "schema")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["user_data"] = bytes(1025)
    return _keep(_same_signature(c, _payload(fields)))


@kind("oversize_certificate", "schema")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["certificate"] = c.doc.certificate + bytes(1025 - len(c.doc.certificate))
    return _keep(_same_signature(c, _payload(fields)))


@kind("oversize_document", "decode")
def _(c: Case, _t: Path) -> Outcome:
    return _keep(_wrap(c.doc.payload + bytes(16384), c.doc.signature))


@kind("chunked_nonce_string", "decode")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["nonce"] = b"NONCEPLACEHOLDER"
    p = _payload(fields)
    return _keep(
        _same_signature(c, p.replace(b"\x50NONCEPLACEHOLDER", b"\x5f\x50NONCEPLACEHOLDER\xff"))
    )


@kind("cabundle_reordered", "chain")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    b = list(c.doc.cabundle)
    fields["cabundle"] = [b[0], b[2], b[1], b[3]]
    return _keep(_same_signature(c, _payload(fields, indefinite=c.doc.indefinite)))


@kind("cabundle_root_moved_last", "root")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    b = list(c.doc.cabundle)
    fields["cabundle"] = [*b[1:], b[0]]  # pitfall 2: the last entry is not the root
    return _keep(_same_signature(c, _payload(fields, indefinite=c.doc.indefinite)))


@kind("cabundle_truncated", "chain")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["cabundle"] = list(c.doc.cabundle[:-1])
    return _keep(_same_signature(c, _payload(fields, indefinite=c.doc.indefinite)))


@kind("certificate_from_another_document", lambda c: "signature" if c.emulated else "chain")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["certificate"] = c.other_leaf
    return _keep(_same_signature(c, _payload(fields, indefinite=c.doc.indefinite)))


@kind("pcr0_removed_original_signature", "signature")
def _(c: Case, _t: Path) -> Outcome:
    fields = _fields(c)
    fields["pcrs"] = {i: v for i, v in c.doc.pcrs.items() if i != 0}
    return _keep(_same_signature(c, _payload(fields, indefinite=c.doc.indefinite)))


# Policy, on the genuine document.
@kind("wrong_nonce", "nonce")
def _(c: Case, _t: Path) -> Outcome:
    return c.data, {"nonce": (c.doc.nonce or b"") + b"\x00"}


@kind("expired", "validity")
def _(c: Case, _t: Path) -> Outcome:
    return c.data, {"at": c.at + dt.timedelta(hours=4)}


@kind("not_yet_valid", "validity")
def _(c: Case, _t: Path) -> Outcome:
    leaf = x509.load_der_x509_certificate(c.doc.certificate)
    return c.data, {"at": leaf.not_valid_before_utc - dt.timedelta(seconds=1)}


@kind("other_trust_root", "root")
def _(c: Case, _t: Path) -> Outcome:
    # A development-CA document under aws trust; an AWS document under dev trust.
    return c.data, {"trust": "aws" if c.trust == "dev" else "dev"}


@kind("wrong_expected_pcr0", "pcr0")
def _(c: Case, _t: Path) -> Outcome:
    return c.data, {"expected_pcrs": {0: b"\x5a" * 48}, "allow_debug": True}


@kind("expected_pcr_missing_from_document", "pcr20")
def _(c: Case, _t: Path) -> Outcome:
    return c.data, {"expected_pcrs": {20: bytes(48)}, "allow_debug": True}


@kind("too_old", "max_age")
def _(c: Case, _t: Path) -> Outcome:
    return c.data, {"at": c.at + dt.timedelta(seconds=2), "max_age": dt.timedelta(seconds=1)}


@kind("wrong_public_key", "public_key")
def _(c: Case, _t: Path) -> Outcome:
    return c.data, {"expected_public_key": b"another key"}


@kind("wrong_user_data", "user_data")
def _(c: Case, _t: Path) -> Outcome:
    return c.data, {"expected_user_data": b"another checkpoint"}


@kind("debug_without_allow_debug", "debug")
def _(c: Case, t: Path) -> Outcome:
    fields = _fields(c)
    fields["pcrs"] = {**c.doc.pcrs, 0: bytes(48), 1: bytes(48), 2: bytes(48)}
    data, pem = _forge(c, t, Forge(), fields)
    return data, {"trust": pem, "allow_debug": False, "expected_pcrs": {4: c.doc.pcrs[4]}}


@kind("pcr0_removed_and_resigned", "pcr0")
def _(c: Case, t: Path) -> Outcome:
    fields = _fields(c)
    fields["pcrs"] = {i: v for i, v in c.doc.pcrs.items() if i != 0}
    data, pem = _forge(c, t, Forge(), fields)
    return data, {"trust": pem}


# A self-made chain, and each constraint broken in it.
@kind("self_made_root", "root")
def _(c: Case, t: Path) -> Outcome:
    data, _pem = _forge(c, t, Forge())
    return data, {}


@kind("real_root_then_self_made_intermediates", "chain")
def _(c: Case, t: Path) -> Outcome:
    data, _pem = _forge(c, t, Forge(real_root_in_bundle=True))
    return data, {}


@kind("leaf_is_a_ca", "ca_constraints")
def _(c: Case, t: Path) -> Outcome:
    data, pem = _forge(c, t, Forge(leaf_ca=True))
    return data, {"trust": pem}


@kind("issuer_not_a_ca", "ca_constraints")
def _(c: Case, t: Path) -> Outcome:
    data, pem = _forge(c, t, Forge(instance_is_ca=False))
    return data, {"trust": pem}


@kind("path_length_exceeded", "ca_constraints")
def _(c: Case, t: Path) -> Outcome:
    data, pem = _forge(c, t, Forge(extra_ca_below_instance=True))
    return data, {"trust": pem}


@kind("unknown_critical_extension", "ca_constraints")
def _(c: Case, t: Path) -> Outcome:
    data, pem = _forge(c, t, Forge(leaf_unknown_critical=True))
    return data, {"trust": pem}


@kind("issuer_without_key_cert_sign", "key_usage")
def _(c: Case, t: Path) -> Outcome:
    data, pem = _forge(c, t, Forge(instance_cert_sign=False))
    return data, {"trust": pem}


@kind("leaf_without_digital_signature", "key_usage")
def _(c: Case, t: Path) -> Outcome:
    data, pem = _forge(c, t, Forge(leaf_digital_signature=False))
    return data, {"trust": pem}


@kind("leaf_key_p256", "algorithm")
def _(c: Case, t: Path) -> Outcome:
    data, pem = _forge(c, t, Forge(leaf_curve=ec.SECP256R1))
    return data, {"trust": pem}


@kind("leaf_signed_with_sha256", "algorithm")
def _(c: Case, t: Path) -> Outcome:
    data, pem = _forge(c, t, Forge(leaf_hash=hashes.SHA256))
    return data, {"trust": pem}


@kind("leaf_expired_in_self_made_chain", "validity")
def _(c: Case, t: Path) -> Outcome:
    data, pem = _forge(c, t, Forge(leaf_expired=True))
    return data, {"trust": pem}


@kind("leaf_key_cert_sign_without_ca", "key_usage")
def _(c: Case, t: Path) -> Outcome:
    # RFC 5280 4.2.1.3: keyCertSign asserted means cA asserted.
    data, pem = _forge(c, t, Forge(leaf_cert_sign_without_ca=True))
    return data, {"trust": pem}


@kind("leaf_tbs_signature_algorithm_differs_from_outer", "algorithm")
def _(c: Case, t: Path) -> Outcome:
    # RFC 5280 4.1.1.2: the TBS signature field and signatureAlgorithm must be the same.
    data, pem = _forge(c, t, Forge(leaf_tbs_says_sha256=True))
    return data, {"trust": pem}


@kind("timestamp_before_leaf_validity", "timestamp")
def _(c: Case, t: Path) -> Outcome:
    # The chain is valid at the verification time, but the signed time is not in the leaf's.
    data, pem = _forge(c, t, Forge(leaf_validity=(dt.timedelta(hours=1), dt.timedelta(hours=4))))
    return data, {"trust": pem, "at": c.at + dt.timedelta(hours=2)}


@kind("timestamp_in_the_future", "future")
def _(c: Case, t: Path) -> Outcome:
    # A leaf valid well before the document: only the signed time says it is from the future.
    data, pem = _forge(c, t, Forge(leaf_validity=(-dt.timedelta(hours=1), dt.timedelta(hours=3))))
    return data, {"trust": pem, "at": c.at - MAX_CLOCK_SKEW - dt.timedelta(milliseconds=1)}


@kind("timestamp_in_the_future_with_max_age", "future")
def _(c: Case, t: Path) -> Outcome:
    # The age is negative: max_age alone (all the key broker had) lets this through.
    data, pem = _forge(c, t, Forge(leaf_validity=(-dt.timedelta(hours=1), dt.timedelta(hours=3))))
    return data, {"trust": pem, "at": c.at - dt.timedelta(minutes=10),
                  "max_age": dt.timedelta(minutes=5)}  # fmt: skip


# -- the tests -------------------------------------------------------------------------------


def test_there_are_at_least_thirty_kinds_of_damage() -> None:
    assert len(KINDS) >= 30
    assert {expect for _fn, expect in KINDS.values() if isinstance(expect, str)} >= {
        "decode", "schema", "algorithm", "root", "chain", "validity", "ca_constraints",
        "key_usage", "signature", "debug", "pcr0", "nonce", "max_age", "public_key", "user_data",
        "future", "timestamp",
    }  # fmt: skip


@pytest.mark.parametrize("name", CASE_NAMES)
def test_every_case_verifies_undamaged(cases: dict[str, Case], name: str) -> None:
    # Otherwise every corruption below would "fail" for the wrong reason.
    case = cases[name]
    assert _check(case) is None
    assert _check(case, nonce=case.doc.nonce) is None if case.doc.nonce else True
    assert _check(case, b"\xd2" + case.data) is None  # tag 18 is not signed: still good


@pytest.mark.parametrize("name", CASE_NAMES)
def test_a_self_made_chain_with_every_constraint_kept_verifies_when_trusted(
    cases: dict[str, Case], name: str, tmp_path: Path
) -> None:
    # The forged baseline passes, so each forged failure below is caused by its one knob.
    case = cases[name]
    data, pem = _forge(case, tmp_path, Forge())
    assert _check(case, data, trust=pem) is None


@pytest.mark.parametrize("damage", sorted(KINDS))
@pytest.mark.parametrize("name", CASE_NAMES)
def test_damage_is_refused_with_the_right_check(
    cases: dict[str, Case], name: str, damage: str, tmp_path: Path
) -> None:
    case = cases[name]
    fn, expect = KINDS[damage]
    data, overrides = fn(case, tmp_path)
    want = expect(case) if callable(expect) else expect
    assert _check(case, data, **overrides) == want


@pytest.mark.parametrize("name", CASE_NAMES)
def test_a_timestamp_ahead_by_less_than_the_skew_verifies(
    cases: dict[str, Case], name: str, tmp_path: Path
) -> None:
    case = cases[name]
    wide = Forge(leaf_validity=(-dt.timedelta(hours=1), dt.timedelta(hours=3)))
    data, pem = _forge(case, tmp_path, wide)
    assert _check(case, data, trust=pem, at=case.at - MAX_CLOCK_SKEW) is None
    assert _check(case, data, trust=pem, at=case.at - MAX_CLOCK_SKEW / 2,
                  max_age=dt.timedelta(0)) is None  # fmt: skip


@pytest.mark.parametrize("name", CASE_NAMES)
def test_the_key_broker_refuses_a_document_from_the_future(
    cases: dict[str, Case], name: str, tmp_path: Path, zcbench_home: Path
) -> None:
    # The broker's verifier checks max_age at its clock; a document stamped ten minutes ahead
    # has a negative age and used to be released. The forged root stands in as the dev root.
    from zcbench.keys import nitro_document_verifier
    from zcbench.nitro import AttestationError

    case = cases[name]
    wide = Forge(leaf_validity=(-dt.timedelta(hours=1), dt.timedelta(hours=3)))
    data, pem = _forge(case, tmp_path, wide)
    (zcbench_home / "devca" / "root.pem").write_bytes(pem.read_bytes())
    on_time = nitro_document_verifier(trust="dev", clock=lambda: case.at + dt.timedelta(seconds=1))
    early = nitro_document_verifier(trust="dev", clock=lambda: case.at - dt.timedelta(minutes=10))
    if case.doc.public_key is not None and not case.allow_debug:  # the broker refuses debug
        assert on_time(data, case.expected_pcrs).public_key == case.doc.public_key
    with pytest.raises(AttestationError) as refused:
        early(data, case.expected_pcrs)
    assert refused.value.check == "future"
