"""A test AMD key chain (ARK → ASK → VCEK, made here, never AMD's) and re-signing of real
SEV-SNP reports with it, for layouts no real report of ours has (report versions 4 and 5).

The chain is shaped like AMD's (RSASSA-PSS SHA-384 links, a P-384 VCEK with the product name,
TCB and hwID extensions) but its root is pinned nowhere: a test trusts it only by replacing
``zcbench.tee.sevsnp._pinned`` for the test (:func:`pin_test_chain`), so a report it signs is
refused everywhere else (``chain``)."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from zcbench.tee import sevsnp

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
_AMD = "1.3.6.1.4.1.3704.1."
_SPL_OIDS = {"boot_loader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8", "fmc": "3.9"}
_START = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
_END = dt.datetime(2040, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class SnpChain:
    ark: x509.Certificate
    ask: x509.Certificate
    vcek: x509.Certificate
    vcek_key: ec.EllipticCurvePrivateKey

    @property
    def vcek_der(self) -> bytes:
        return self.vcek.public_bytes(Encoding.DER)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "zcbench test AMD"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # fmt: skip


def _der_integer(value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return bytes([0x02, len(body)]) + body


def _cert(subject: str, issuer: str, key: object, signer: rsa.RSAPrivateKey,
          extensions: dict[str, bytes] | None = None) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(_START)
        .not_valid_after(_END)
    )
    for oid, value in (extensions or {}).items():
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    return builder.sign(signer, hashes.SHA384(), rsa_padding=_PSS)


@functools.lru_cache(maxsize=8)
def _keys(product: str) -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return (rsa.generate_private_key(65537, 2048), rsa.generate_private_key(65537, 2048))


def make_chain(product: str, chip_id: bytes, spl: dict[str, int]) -> SnpChain:
    """A chain for ``product`` whose VCEK is for ``chip_id`` (its hwID) at TCB ``spl``."""
    ark_key, ask_key = _keys(product)
    ark = _cert(f"ARK-{product}", f"ARK-{product}", ark_key.public_key(), ark_key)
    ask = _cert(f"SEV-{product}", f"ARK-{product}", ask_key.public_key(), ark_key)
    vcek_key = ec.generate_private_key(ec.SECP384R1())
    name = f"{product}-B0".encode()
    extensions = {_AMD + "2": bytes([0x16, len(name)]) + name, _AMD + "4": chip_id}
    extensions |= {_AMD + _SPL_OIDS[k]: _der_integer(v) for k, v in spl.items()}
    vcek = _cert("SEV-VCEK", f"SEV-{product}", vcek_key.public_key(), ask_key, extensions)
    return SnpChain(ark=ark, ask=ask, vcek=vcek, vcek_key=vcek_key)


def chain_for(report: bytes, product: str = "Milan") -> SnpChain:
    """A test chain whose VCEK matches ``report``'s chip_id and reported_tcb."""
    parsed = sevsnp.parse_report(report)
    tcb = sevsnp.TcbVersion.unpack(parsed.reported_tcb, product)  # type: ignore[arg-type]
    chip = parsed.chip_id[:8] if product == "Turin" else parsed.chip_id
    return make_chain(product, chip, tcb.spl())


def resign(report: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """``report`` with its signature replaced by ``key``'s over bytes 0x000-0x29F."""
    r, s = decode_dss_signature(key.sign(report[:0x2A0], ec.ECDSA(hashes.SHA384())))
    signature = r.to_bytes(72, "little") + s.to_bytes(72, "little")
    return report[:0x2A0] + signature + bytes(0x4A0 - 0x2A0 - len(signature))


def pin_test_chain(monkeypatch: pytest.MonkeyPatch, chain: SnpChain, product: str) -> None:
    """Trust ``chain`` as ``product``'s AMD roots for one test (and nothing else)."""
    real = sevsnp._pinned

    def pinned(which: str) -> dict[str, x509.Certificate]:
        if which == product:
            return {"ark": chain.ark, "ask": chain.ask, "asvk": chain.ask}
        return dict(real(which))  # type: ignore[arg-type]

    monkeypatch.setattr(sevsnp, "_pinned", pinned)
