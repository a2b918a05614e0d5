"""Benchmark: verifying one attestation document against its cryptography alone.

Baseline (measured in the same run, interleaved round by round): the five ECDSA P-384
verifications a document needs and nothing else — the leaf, instance, zonal and regional
certificates each checked against their issuer's key (one per chain link; the pinned root is
compared by bytes, not verified) plus the document signature — with keys, signatures and signed
bytes extracted beforehand.

Measured: ``verify_attestation`` end to end on the real document tests/vectors/nitro/doc_1.cbor
(strict CBOR parse, certificate parsing, the five verifications, validity, constraints, key
usage, PCR and nonce policy). Two figures: "warm", where certificates parsed by an earlier call
are reused, and "cold", with that cache emptied before each call (the pinned root stays parsed:
it is loaded once per process).

How the verifier stays close to its cryptography: exactly one ECDSA verification per link
(the issuer's parsed key over the child's TBS bytes; the pinned root is compared by bytes, never
verified); issuer and subject compared as encoded bytes, so no Python Name objects are built on
the hot path; display facts (RFC 4514 names, fingerprints) rendered only when asked for; parsed
certificates cached by their DER bytes, which is correct because parsing is a pure function of
the bytes and every check still runs on every call.

Usage: .venv/bin/python bench/bench_attestation.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from zcbench.nitro import parse_document, verify_attestation
from zcbench.nitro._chain import _parse_der

DOC = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "nitro" / "doc_1.cbor"
TARGET = 1.5


def _crypto_only(data: bytes) -> Callable[[], None]:
    doc = parse_document(data)
    certs = [x509.load_der_x509_certificate(d) for d in (*doc.cabundle, doc.certificate)]
    links = []
    for issuer, child in itertools.pairwise(certs):
        key = issuer.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        links.append((key, child.signature, child.tbs_certificate_bytes))
    leaf_key = certs[-1].public_key()
    assert isinstance(leaf_key, ec.EllipticCurvePublicKey)
    r = int.from_bytes(doc.signature[:48], "big")
    s = int.from_bytes(doc.signature[48:], "big")
    links.append((leaf_key, encode_dss_signature(r, s), doc.signed_bytes()))
    assert len(links) == 5
    algorithm = ec.ECDSA(hashes.SHA384())

    def run() -> None:
        for key, signature, signed in links:
            key.verify(signature, signed, algorithm)

    return run


def _full(data: bytes, *, cold: bool) -> Callable[[], None]:
    doc = parse_document(data)
    at: dt.datetime = doc.time
    expected = {i: doc.pcrs[i] for i in (0, 1, 2, 8)}

    def run() -> None:
        if cold:
            _parse_der.cache_clear()
        verify_attestation(data, at=at, expected_pcrs=expected, nonce=doc.nonce)

    return run


def _time(fn: Callable[[], None], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few rounds")
    args = parser.parse_args()
    rounds, repeat = (3, 5) if args.quick else (15, 40)

    data = DOC.read_bytes()
    runners = {
        "crypto only (5 x ES384 verify)": _crypto_only(data),
        "verify_attestation, warm": _full(data, cold=False),
        "verify_attestation, cold": _full(data, cold=True),
    }
    for fn in runners.values():  # warm up imports, caches, the root pin
        fn()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):  # interleaved, so drift on a noisy machine hits all alike
        for name, fn in runners.items():
            samples[name].append(_time(fn, repeat))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    baseline = medians["crypto only (5 x ES384 verify)"]
    print(f"document: {DOC.name}, {rounds} rounds x {repeat} calls, medians")
    for name, value in medians.items():
        print(f"  {name:34s} {value * 1e3:7.3f} ms   {value / baseline:5.2f}x baseline")
    worst = max(medians["verify_attestation, warm"], medians["verify_attestation, cold"])
    ratio = worst / baseline
    verdict = "within" if ratio <= TARGET else "OVER"
    print(f"ratio (worse of warm/cold) {ratio:.2f}x: {verdict} the {TARGET}x target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
