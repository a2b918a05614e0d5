"""The generated emulated vectors (tests/vectors/nitro/GENERATED.md) keep verifying."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from zcbench.nitro import check_attestation, load_trust_root, parse_document, verify_attestation
from zcbench.nitro._cbor import decode


@pytest.mark.parametrize("name", ["emulated_definite", "emulated_indefinite"])
def test_emulated_vectors(nitro_vectors: Path, zcbench_home: Path, name: str) -> None:
    facts = json.loads((nitro_vectors / "emulated.json").read_text())
    data = (nitro_vectors / f"{name}.cbor").read_bytes()
    root = nitro_vectors / "emulated_root.pem"
    doc = parse_document(data)
    assert doc.indefinite is (name == "emulated_indefinite")
    assert doc.timestamp == facts["timestamp_ms"]
    assert doc.module_id == facts["module_id"]
    assert decode(doc.user_data or b"") == {"checkpoint": b"zcbench/vector\n1\nAAAA\n"}
    expected = {int(i): bytes.fromhex(v) for i, v in facts["pcrs"].items()}
    kwargs = {
        "expected_pcrs": expected,
        "nonce": bytes.fromhex(facts["nonce"]),
        "expected_public_key": bytes.fromhex(facts["public_key"]),
        "expected_user_data": bytes.fromhex(facts["user_data"]),
    }
    result = verify_attestation(data, trust=root, at=doc.time, **kwargs)  # type: ignore[arg-type]
    # A development root passed as a file is still the development CA: SIMULATED.
    assert result.trust_root.fingerprint == load_trust_root(root).fingerprint
    assert result.trust_root.kind == "dev"
    assert result.simulated

    (zcbench_home / "devca").mkdir()
    shutil.copy(root, zcbench_home / "devca" / "root.pem")
    assert verify_attestation(data, trust="dev", at=doc.time, **kwargs).simulated  # type: ignore[arg-type]

    later = doc.time + dt.timedelta(hours=4)
    assert check_attestation(data, trust=root, at=later, **kwargs).failed_check == "validity"  # type: ignore[arg-type]
    assert check_attestation(data, trust="aws", at=doc.time, **kwargs).failed_check == "root"  # type: ignore[arg-type]
