"""``zcbench verify attestation`` on every TEE: recognition, the JSON keys, flags that do not
apply, and the dispatch of :mod:`zcbench.tee`."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest

from zcbench.cli import main
from zcbench.errors import DataError, UsageError
from zcbench.tee import AttestationPolicy, check_evidence, decode_evidence, detect_tee

TEE = Path(__file__).resolve().parents[1] / "vectors" / "tee"
SNP = TEE / "snp"
KEYS = ("tee", "verified", "failed_check", "measurement", "report_data", "debug", "tcb_status")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _json(out: str) -> dict[str, object]:
    (line,) = out.strip().splitlines()
    value = json.loads(line)
    assert isinstance(value, dict)
    for key in KEYS:
        assert key in value, key
    return value


def test_snp_report_as_hex_with_its_vcek(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys, "verify", "attestation", str(SNP / "report_milan.hex"),
        "--cert", str(SNP / "vcek_milan.der"), "--at", "2025-01-01T00:00:00Z", "--json",
    )
    assert code == 0, out
    result = _json(out)
    assert (result["tee"], result["verified"], result["debug"]) == ("sev-snp", True, False)
    assert str(result["measurement"]).startswith("7a1e5c266c0108db")
    assert result["tcb_status"] is None
    assert "no measurement was checked" in err


def test_snp_measurement_and_report_data_flags(capsys: pytest.CaptureFixture[str]) -> None:
    report = decode_evidence((SNP / "report_milan.hex").read_bytes())
    measurement = report[0x90:0xC0].hex()
    base = ["verify", "attestation", str(SNP / "report_milan.hex"),
            "--cert", str(SNP / "vcek_milan.der"), "--at", "2025-01-01T00:00:00Z"]
    code, out, err = _run(capsys, *base, "--expect-measurement", measurement,
                          "--report-data", report[0x50:0x90].hex())
    assert code == 0, out
    assert out.startswith("VERIFIED (sev-snp)\n")
    assert "(checked)" in out
    assert "no measurement" not in err
    code, out, _ = _run(capsys, *base, "--expect-measurement", "00" * 48)
    assert code == 1
    assert out.startswith("FAILED: measurement:")
    code, out, _ = _run(capsys, *base, "--report-data", "abcd", "--json")
    assert (code, _json(out)["failed_check"]) == (1, "report_data")


def test_vlek_report_outside_its_window_fails_validity(capsys: pytest.CaptureFixture[str]) -> None:
    path, cert = str(SNP / "vlek_report.bin"), str(SNP / "vlek.der")
    code, out, _ = _run(capsys, "verify", "attestation", path, "--cert", cert, "--json")
    assert code == 1  # "now" is past the VLEK's 2025-12-10 expiry
    assert _json(out)["failed_check"] == "validity"
    code, out, _ = _run(capsys, "verify", "attestation", path, "--cert", cert,
                        "--at", "2025-06-01T00:00:00Z", "--json")
    assert (code, _json(out)["verified"]) == (0, True)


def test_dcap_quotes(capsys: pytest.CaptureFixture[str]) -> None:
    at = ["--at", "2025-06-20T12:00:00Z"]
    tdx, tdx_col = str(TEE / "tdx" / "tdx_quote"), str(TEE / "tdx" / "tdx_quote_collateral.json")
    code, out, _ = _run(capsys, "verify", "attestation", tdx, "--collateral", tdx_col, *at,
                        "--json")
    result = _json(out)
    assert (code, result["tee"], result["tcb_status"]) == (0, "tdx", "UpToDate")
    code, out, err = _run(capsys, "verify", "attestation", tdx, *at, "--json")
    assert (code, _json(out)["tcb_status"]) == (0, "unknown")
    assert "TCB status is unknown" in err
    sgx, sgx_col = str(TEE / "sgx" / "sgx_quote"), str(TEE / "sgx" / "sgx_quote_collateral.json")
    code, out, _ = _run(capsys, "verify", "attestation", sgx, "--collateral", sgx_col, *at)
    assert code == 1
    assert out.startswith("FAILED: tcb_status:")
    assert "INTEL-SA-00289" in out
    code, out, _ = _run(capsys, "verify", "attestation", sgx, "--collateral", sgx_col, *at,
                        "--allow-tcb-status", "ConfigurationAndSWHardeningNeeded", "--json")
    result = _json(out)
    assert (code, result["tee"], result["verified"]) == (0, "sgx", True)
    outdated = str(TEE / "tdx" / "tdx_quote_outdated")
    outdated_col = str(TEE / "tdx" / "tdx_quote_outdated_collateral.json")
    code, out, _ = _run(capsys, "verify", "attestation", outdated, "--collateral", outdated_col,
                        "--at", "2026-02-19T12:00:00Z", "--json")
    assert (code, _json(out)["failed_check"]) == (1, "tcb_status")


def test_nitro_json_carries_the_tee_keys(
    capsys: pytest.CaptureFixture[str], nitro_vectors: Path
) -> None:
    path = str(nitro_vectors / "doc_1.cbor")
    code, out, _ = _run(capsys, "verify", "attestation", path, "--at", "doc", "--json")
    result = _json(out)
    assert code == 0
    assert result["tee"] == "nitro"
    pcrs = result["pcrs"]
    assert isinstance(pcrs, dict)
    assert result["measurement"] == pcrs["0"]
    assert result["tcb_status"] is None
    code, out, _ = _run(capsys, "verify", "attestation", path, "--at", "doc",
                        "--expect-measurement", pcrs["0"], "--json")
    assert (code, _json(out)["measurement_checked"]) == (0, True)
    code, out, _ = _run(capsys, "verify", "attestation", path, "--at", "doc",
                        "--expect-measurement", "00" * 48)
    assert (code, out.split(":")[0:2]) == (1, ["FAILED", " measurement"])


@pytest.mark.parametrize(
    ("evidence", "extra"),
    [
        ("snp/report_milan.hex", ["--nonce", "00"]),
        ("snp/report_milan.hex", ["--collateral", "tdx/tdx_quote_collateral.json"]),
        ("snp/report_milan.hex", ["--at", "doc"]),
        ("snp/report_milan.hex", ["--trust", "dev"]),
        ("snp/report_milan.hex", ["--expect-measurement", "zz"]),
        ("snp/report_milan.hex", ["--expect-measurement", "00"]),
        ("snp/report_milan.hex", ["--expect-field", "mrtd=00"]),
        ("tdx/tdx_quote", ["--cert", "snp/vcek_milan.der"]),
        ("tdx/tdx_quote", ["--allow-tcb-status", "Fine"]),
        ("tdx/tdx_quote", ["--collateral", "tdx/missing.json"]),
        ("tdx/tdx_quote", ["--expect-pcr", "0=" + "00" * 48]),
        ("snp/report_milan.hex", ["--cert", "snp/missing.der"]),
        ("snp/report_milan.hex", ["--kds", "http://127.0.0.1:9"]),
        ("snp/report_milan.hex", ["--pccs", "https://127.0.0.1:9"]),
        ("tdx/tdx_quote", ["--kds"]),
        ("tdx/tdx_quote", ["--pccs", "http://127.0.0.1:9"]),
        ("tdx/tdx_quote", ["--pccs", "https://127.0.0.1:9", "--collateral",
                           "tdx/tdx_quote_collateral.json"]),
    ],
)
def test_flags_that_do_not_apply_are_usage_errors(
    capsys: pytest.CaptureFixture[str], evidence: str, extra: list[str]
) -> None:
    argv = [a if not a.endswith((".json", ".der", ".hex")) else str(TEE / a) for a in extra]
    code, _, err = _run(capsys, "verify", "attestation", str(TEE / evidence), *argv)
    assert code == 2, err
    assert err.startswith("zcbench: ")


def test_nitro_only_flags_refused_on_nitro_misuse(
    capsys: pytest.CaptureFixture[str], nitro_vectors: Path
) -> None:
    path = str(nitro_vectors / "doc_1.cbor")
    for extra in (["--cert", path], ["--allow-tcb-status", "OutOfDate"],
                  ["--expect-field", "rtmr0=00"]):
        code, _, err = _run(capsys, "verify", "attestation", path, "--at", "doc", *extra)
        assert code == 2, err


def test_detection_and_dispatch() -> None:
    assert detect_tee(decode_evidence((SNP / "report_milan.hex").read_bytes())) == "sev-snp"
    assert detect_tee((SNP / "vlek_report.bin").read_bytes()) == "sev-snp"
    assert detect_tee((TEE / "sgx" / "sgx_quote").read_bytes()) == "sgx"
    assert detect_tee((TEE / "tdx" / "tdx_quote_outdated").read_bytes()) == "tdx"
    assert detect_tee(b"\x84\x40\xa0\x40\x40") == "nitro"
    quote = (TEE / "tdx" / "tdx_quote").read_bytes()
    assert decode_evidence(base64.b64encode(quote)) == quote
    assert decode_evidence(b"0x" + quote.hex().encode() + b"\n") == quote
    assert decode_evidence(b"TWFu") == b"TWFu"  # base64 of no evidence stays as it is
    for junk in (b"", b"\xff" * 100, b"\0" * 1184):
        with pytest.raises(DataError):
            detect_tee(junk)
    policy = AttestationPolicy(unsafe_skip_pcr_check=True)
    at = dt.datetime(2025, 6, 20, tzinfo=dt.UTC)
    with pytest.raises(UsageError, match="SEV-SNP"):
        check_evidence((TEE / "sgx" / "sgx_quote").read_bytes(), policy, at=at,
                       certificates=[b"x"])
    verdict = check_evidence((TEE / "sgx" / "sgx_quote").read_bytes(), policy, at=at)
    assert (verdict.tee, verdict.verified) == ("sgx", True)
