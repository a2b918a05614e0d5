"""Benchmark: verifying SEV-SNP reports and DCAP quotes against their cryptography alone.

Baselines (measured in the same run, interleaved round by round), with keys, signatures and
signed bytes extracted beforehand:

* SEV-SNP (tests/vectors/tee/snp/report_milan.hex with its VCEK): the two RSASSA-PSS SHA-384
  verifications of the chain (ASK by the ARK, VCEK by the ASK; the pinned ARK is compared by
  bytes) and the report's ECDSA P-384 signature.
* DCAP without collateral (tests/vectors/tee/tdx/tdx_quote): the four ECDSA P-256
  verifications (PCK CA by the root, PCK by the PCK CA, QE report by the PCK key, quote by the
  attestation key) and the SHA-256 binding the attestation key.

Measured: ``check_snp`` and ``check_quote`` end to end (strict parse, certificates, the
verifications, TCB and hwID, policy). With collateral, ``dcap-qvl`` evaluates the TCB info, QE
identity and CRLs (their own signatures included) under the same root: that figure is printed
against the same baseline, as what the collateral costs, but the target is held by the
verification this module does itself. Times are this process's CPU time (the verifiers are
single-threaded), so other jobs on the machine do not count against either side.

Usage: .venv/bin/python bench/bench_tee.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from zcbench.tee import AttestationPolicy
from zcbench.tee.dcap import check_quote, load_collateral, parse_quote
from zcbench.tee.sevsnp import _pinned, check_snp, parse_report

TEE = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "tee"
TARGET = 1.5


def _snp_crypto(report_bytes: bytes, vcek_der: bytes) -> Callable[[], None]:
    report = parse_report(report_bytes)
    pinned = _pinned("Milan")
    ark, ask = pinned["ark"], pinned["ask"]
    with warnings.catch_warnings():  # AMD VCEK serials are not positive (see sevsnp.py)
        warnings.simplefilter("ignore")
        vcek = x509.load_der_x509_certificate(vcek_der)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
    ark_key, ask_key, vcek_key = ark.public_key(), ask.public_key(), vcek.public_key()
    assert isinstance(ark_key, rsa.RSAPublicKey)
    assert isinstance(ask_key, rsa.RSAPublicKey)
    assert isinstance(vcek_key, ec.EllipticCurvePublicKey)
    signature = encode_dss_signature(report.signature_r, report.signature_s)
    signed = report.signed_bytes
    es384 = ec.ECDSA(hashes.SHA384())

    def run() -> None:
        ark_key.verify(ask.signature, ask.tbs_certificate_bytes, pss, hashes.SHA384())
        ask_key.verify(vcek.signature, vcek.tbs_certificate_bytes, pss, hashes.SHA384())
        vcek_key.verify(signature, signed, es384)

    return run


def _dcap_crypto(data: bytes) -> Callable[[], None]:
    quote = parse_quote(data)
    leaf, ca, root = x509.load_pem_x509_certificates(quote.pck_chain_pem)
    es256 = ec.ECDSA(hashes.SHA256())

    def raw(sig: bytes) -> bytes:
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        return encode_dss_signature(r, s)

    key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), b"\x04" + quote.attestation_key
    )
    keys = [root.public_key(), ca.public_key(), leaf.public_key(), key]
    assert all(isinstance(k, ec.EllipticCurvePublicKey) for k in keys)
    work = [
        (keys[0], ca.signature, ca.tbs_certificate_bytes),
        (keys[1], leaf.signature, leaf.tbs_certificate_bytes),
        (keys[2], raw(quote.qe_report_signature), quote.qe_report),
        (keys[3], raw(quote.signature), quote.signed),
    ]
    binding = quote.attestation_key + quote.qe_auth_data

    def run() -> None:
        for k, signature, signed in work:
            assert isinstance(k, ec.EllipticCurvePublicKey)
            k.verify(signature, signed, es256)
        hashlib.sha256(binding).digest()

    return run


def _time(fn: Callable[[], None], repeat: int) -> float:
    # CPU time of this process: on a shared machine wall time mostly measures the other jobs.
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few rounds")
    args = parser.parse_args()
    rounds, repeat = (3, 5) if args.quick else (15, 40)

    report = bytes.fromhex((TEE / "snp" / "report_milan.hex").read_text().strip())
    vcek = (TEE / "snp" / "vcek_milan.der").read_bytes()
    quote = (TEE / "tdx" / "tdx_quote").read_bytes()
    collateral = load_collateral(TEE / "tdx" / "tdx_quote_collateral.json")
    snp_at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    dcap_at = dt.datetime(2025, 6, 20, 12, tzinfo=dt.UTC)

    # Policies as a verifier uses them: the measurement and the report data checked.
    parsed = parse_report(report)
    snp_policy = AttestationPolicy(
        expected_measurement=parsed.measurement, expected_report_data=parsed.report_data
    )
    td = parse_quote(quote)
    dcap_policy = AttestationPolicy(
        expected_measurement=td.measurement, expected_report_data=td.report_data
    )

    def snp_full() -> None:
        assert check_snp(report, snp_policy, at=snp_at, certificates=[vcek]).verified

    def dcap_full() -> None:
        assert check_quote(quote, dcap_policy, at=dcap_at).verified

    def dcap_collateral() -> None:
        assert check_quote(quote, dcap_policy, at=dcap_at, collateral=collateral).verified

    runners: dict[str, Callable[[], None]] = {
        "snp crypto only (2 x PSS + ES384)": _snp_crypto(report, vcek),
        "check_snp": snp_full,
        "dcap crypto only (4 x ES256)": _dcap_crypto(quote),
        "check_quote, no collateral": dcap_full,
        "check_quote, with collateral": dcap_collateral,
    }
    for fn in runners.values():  # warm up imports, caches, the pinned roots
        fn()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):  # interleaved, so drift on a noisy machine hits all alike
        for name, fn in runners.items():
            samples[name].append(_time(fn, repeat))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    snp_base = medians["snp crypto only (2 x PSS + ES384)"]
    dcap_base = medians["dcap crypto only (4 x ES256)"]
    print(f"{rounds} rounds x {repeat} calls, medians")
    for name, value in medians.items():
        base = snp_base if name.startswith(("snp", "check_snp")) else dcap_base
        print(f"  {name:36s} {value * 1e3:7.3f} ms   {value / base:5.2f}x baseline")
    for label, ratio in (
        ("SEV-SNP", medians["check_snp"] / snp_base),
        ("DCAP (no collateral)", medians["check_quote, no collateral"] / dcap_base),
    ):
        verdict = "within" if ratio <= TARGET else "OVER"
        print(f"ratio {label} {ratio:.2f}x: {verdict} the {TARGET}x target")
    extra = medians["check_quote, with collateral"] / dcap_base
    print(f"with collateral (dcap-qvl's own checks added) {extra:.2f}x the same baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
