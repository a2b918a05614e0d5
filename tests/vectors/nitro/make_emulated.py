"""Regenerate the emulated attestation vectors in this folder.

Writes ``emulated_definite.cbor`` and ``emulated_indefinite.cbor`` (the same fields in both payload
framings, each signed by its own fresh leaf), ``emulated_root.pem`` (the throwaway development
CA root they chain to; its private keys are discarded) and ``emulated.json`` (the facts a test
checks). Run from the repository root::

    .venv/bin/python tests/vectors/nitro/make_emulated.py

The bytes differ on every run (fresh keys); the facts in ``emulated.json`` do not.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from zcbench.nitro import DevCA, NsmEmulator, parse_document
from zcbench.nitro._cbor import encode
from zcbench.nitro.emulator import extend

HERE = Path(__file__).resolve().parent
TIMESTAMP = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
MODULE_ID = "i-0abcdef0123456789-enc0123456789abcdef"


def main() -> None:
    pcrs = {i: extend(bytes(48), f"zcbench vector PCR{i}".encode()) for i in (0, 1, 2)}
    # The live run's bindings (DESIGN.md): public_key is the log key's DER SPKI, user_data a CBOR
    # map holding the latest checkpoint.
    log_key = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"vector").digest())
    spki = log_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    user_data = encode({"checkpoint": b"zcbench/vector\n1\nAAAA\n"})
    nonce = hashlib.sha256(b"lp nonce").digest()
    with tempfile.TemporaryDirectory() as tmp:
        ca = DevCA.load_or_create(Path(tmp) / "devca", now=TIMESTAMP)
        for name, indefinite in (("emulated_definite", False), ("emulated_indefinite", True)):
            emulator = NsmEmulator(
                pcrs,
                ca,
                module_id=MODULE_ID,
                clock=lambda: TIMESTAMP,
                indefinite_payload=indefinite,
            )
            data = emulator.attestation(nonce=nonce, user_data=user_data, public_key=spki)
            (HERE / f"{name}.cbor").write_bytes(data)
            assert parse_document(data).indefinite is indefinite
        (HERE / "emulated_root.pem").write_bytes(ca.root_pem.read_bytes())
    facts: dict[str, object] = {
        "generated_by": "tests/vectors/nitro/make_emulated.py",
        "timestamp_ms": (TIMESTAMP - dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
        // dt.timedelta(milliseconds=1),
        "module_id": MODULE_ID,
        "pcrs": {str(i): v.hex() for i, v in pcrs.items()},
        "nonce": nonce.hex(),
        "public_key": spki.hex(),
        "user_data": user_data.hex(),
    }
    (HERE / "emulated.json").write_text(json.dumps(facts, indent=1) + "\n")


if __name__ == "__main__":
    main()
