"""Schema-2 commitments: the TEE kind and its measured fields, read by ``verify attestation``;
schema 1 (Nitro PCRs) still read and still written for Nitro."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zcbench.cli import main
from zcbench.errors import DataError
from zcbench.nitro.commitment import (
    COMMITMENT_SCHEMA,
    COMMITMENT_SCHEMA_V2,
    Commitment,
    load_commitment_pcrs,
)
from zcbench.tee import decode_evidence
from zcbench.tee.dcap import parse_quote

TEE = Path(__file__).resolve().parents[1] / "vectors" / "tee"
SNP_REPORT = decode_evidence((TEE / "snp" / "report_milan.hex").read_bytes())
SGX = parse_quote((TEE / "sgx" / "sgx_quote").read_bytes())


def _write(tmp_path: Path, body: object) -> Path:
    path = tmp_path / "commitment.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


def test_v2_round_trip_and_v1_unchanged() -> None:
    snp = Commitment(pcrs={}, tee="sev-snp", measurements={"measurement": b"\1" * 48,
                                                            "host_data": b"\2" * 32})
    doc = json.loads(snp.to_json())
    assert doc["schema"] == COMMITMENT_SCHEMA_V2
    assert doc["tee"] == "sev-snp"
    assert "pcrs" not in doc
    again = Commitment.from_json(snp.to_json())
    assert again == snp
    assert again.expected_measurement == b"\1" * 48
    assert again.expected_fields == {"host_data": b"\2" * 32}
    nitro = Commitment(pcrs={0: b"\3" * 48})
    assert json.loads(nitro.to_json())["schema"] == COMMITMENT_SCHEMA
    assert Commitment.from_json(nitro.to_json()).tee == "nitro"
    v2_nitro = {"schema": COMMITMENT_SCHEMA_V2, "tee": "nitro", "pcrs": {"0": "aa" * 48}}
    assert Commitment.from_json(json.dumps(v2_nitro)).expected_measurement == b"\xaa" * 48


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"pcrs": {"0": "aa" * 48}}, "has no schema field"),
        ({"schema": COMMITMENT_SCHEMA_V2, "measurements": {"mrtd": "aa"}}, "'tee' is None"),
        ({"schema": COMMITMENT_SCHEMA_V2, "tee": "tdx"}, "'mrtd'"),
        ({"schema": COMMITMENT_SCHEMA_V2, "tee": "tdx", "measurements": {"rtmr0": "aa"}}, "mrtd"),
        ({"schema": COMMITMENT_SCHEMA_V2, "tee": "sgx", "measurements": {"mrenclave": "a"}},
         "odd"),
        ({"schema": COMMITMENT_SCHEMA_V2, "tee": "sgx", "measurements": {"mrenclave": "zz"}},
         "hex"),
        ({"schema": COMMITMENT_SCHEMA_V2, "tee": "sgx",
          "measurements": {"mrenclave": "aa", "MR": "aa"}}, "name"),
        ({"schema": COMMITMENT_SCHEMA_V2, "tee": "sgx", "pcrs": {"0": "aa" * 48},
          "measurements": {"mrenclave": "aa"}}, "no 'pcrs'"),
        ({"schema": COMMITMENT_SCHEMA, "tee": "sgx", "pcrs": {"0": "aa" * 48}}, "schema"),
        ({"schema": COMMITMENT_SCHEMA_V2, "tee": "azure", "pcrs": {"0": "aa" * 48}}, "azure"),
    ],
)
def test_malformed_v2_commitments(tmp_path: Path, body: object, why: str) -> None:
    with pytest.raises(DataError, match=why):
        Commitment.load(_write(tmp_path, body))


def test_a_tee_commitment_is_not_nitro_pcrs(tmp_path: Path) -> None:
    path = _write(tmp_path, {"schema": COMMITMENT_SCHEMA_V2, "tee": "sgx",
                             "measurements": {"mrenclave": "aa" * 32}})
    with pytest.raises(DataError, match="sgx image"):
        load_commitment_pcrs(path)


def _verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main(["verify", "attestation", *argv, "--json"])
    out, _ = capsys.readouterr()
    return code, json.loads(out)


def test_verify_against_a_v2_commitment(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = _write(tmp_path, {"schema": COMMITMENT_SCHEMA_V2, "tee": "sev-snp", "measurements": {
        "measurement": SNP_REPORT[0x90:0xC0].hex(), "host_data": SNP_REPORT[0xC0:0xE0].hex()}})
    snp = [str(TEE / "snp" / "report_milan.hex"), "--cert", str(TEE / "snp" / "vcek_milan.der"),
           "--at", "2025-01-01T00:00:00Z"]
    code, result = _verify(capsys, *snp, "--commitment", str(good))
    assert (code, result["verified"], result["measurement_checked"]) == (0, True, True)
    bad = tmp_path / "bad"
    bad.mkdir()
    wrong = _write(bad, {"schema": COMMITMENT_SCHEMA_V2, "tee": "sev-snp",
                         "measurements": {"measurement": "00" * 48}})
    code, result = _verify(capsys, *snp, "--commitment", str(wrong))
    assert (code, result["failed_check"]) == (1, "measurement")
    sgx_dir = tmp_path / "sgx"
    sgx_dir.mkdir()
    sgx = _write(sgx_dir, {"schema": COMMITMENT_SCHEMA_V2, "tee": "sgx", "measurements": {
        "mrenclave": SGX.measurement.hex(), "mrsigner": "00" * 32}})
    code, result = _verify(capsys, str(TEE / "sgx" / "sgx_quote"), "--at", "2025-06-20T12:00:00Z",
                           "--commitment", str(sgx))
    assert (code, result["failed_check"]) == (1, "mrsigner")
    code = main(["verify", "attestation", str(TEE / "sgx" / "sgx_quote"), "--commitment",
                 str(good), "--at", "2025-06-20T12:00:00Z"])
    assert code == 2  # an SEV-SNP commitment for an SGX quote
    assert "commits a sev-snp image" in capsys.readouterr().err
