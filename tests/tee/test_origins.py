"""Evidence from other origins than the first fixtures (tests/vectors/tee/SOURCES.md, "More
origins"): a second Milan report, an Azure Genoa report, VCEKs that do not chain, a debug TD's
quote and three more TDX quotes, each decided as its source says."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from zcbench.tee import AttestationPolicy, check_evidence

TEE = Path(__file__).resolve().parents[1] / "vectors" / "tee"
AT = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
ANY = AttestationPolicy(unsafe_skip_pcr_check=True)


def _snp(report: str, cert: str, policy: AttestationPolicy = ANY) -> tuple[bool, str | None]:
    verdict = check_evidence(
        (TEE / "snp" / report).read_bytes(), policy, at=AT,
        certificates=[(TEE / "snp" / cert).read_bytes()],
    )
    return verdict.verified, verdict.failed_check


def test_second_milan_report_and_bad_vceks() -> None:
    assert _snp("trustee_report.bin", "trustee_vcek.der") == (True, None)
    assert _snp("trustee_report.bin", "trustee_vcek_invalid_legacy.der") == (False, "chain")
    assert _snp("trustee_report.bin", "trustee_vcek_invalid_new.der") == (False, "chain")


def test_azure_genoa_report() -> None:
    verdict = check_evidence(
        (TEE / "snp" / "azure_genoa_report.bin").read_bytes(), ANY, at=AT,
        certificates=[(TEE / "snp" / "azure_genoa_vcek.pem").read_bytes()],
    )
    assert verdict.verified, verdict.message
    assert (verdict.fields["product"], verdict.fields["version"]) == ("Genoa", "3")
    # the Milan VCEK is another product's: its chain does not end in the Genoa root
    wrong = _snp("azure_genoa_report.bin", "vcek_milan.der")
    assert wrong[1] in {"product", "tcb", "chip_id"}


def test_debug_td_refused_unless_allowed() -> None:
    data = (TEE / "tdx" / "trustee_tdx_quote_4_debug").read_bytes()
    refused = check_evidence(data, ANY, at=AT)
    assert (refused.failed_check, refused.debug) == ("debug", True)
    allowed = AttestationPolicy(unsafe_skip_pcr_check=True, allow_debug=True)
    verdict = check_evidence(data, allowed, at=AT)
    assert verdict.verified
    assert verdict.tcb_status == "unknown"


@pytest.mark.parametrize("name", ["trustee_tdx_quote_5", "trustee_tdx_quote_6", "azure_td_quote"])
def test_more_tdx_quotes(name: str) -> None:
    data = (TEE / "tdx" / name).read_bytes()
    verdict = check_evidence(data, ANY, at=AT)
    assert (verdict.tee, verdict.verified, verdict.tcb_status) == ("tdx", True, "unknown")
    if name == "trustee_tdx_quote_6":
        early = check_evidence(data, ANY, at=dt.datetime(2024, 6, 1, tzinfo=dt.UTC))
        assert early.failed_check == "validity"


# --- layouts of later firmware and other vendors' wrappings --------------------------------


def test_td_report_1_5_quotes_report_mrservicetd_and_tee_tcb_svn2() -> None:
    from zcbench.tee.dcap import parse_quote

    quote = (TEE / "tdx" / "trustee_tdx_quote_5").read_bytes()
    assert (parse_quote(quote).version, parse_quote(quote).body_type) == (5, 3)
    verdict = check_evidence(quote, ANY, at=AT)
    assert verdict.verified, verdict.message
    mrservicetd = verdict.fields["mrservicetd"]
    assert len(bytes.fromhex(mrservicetd)) == 48
    assert "tee_tcb_svn2" in verdict.fields
    policy = AttestationPolicy(unsafe_skip_pcr_check=True,
                               expected_fields={"mrservicetd": bytes.fromhex(mrservicetd)})
    assert check_evidence(quote, policy, at=AT).verified
    # a TD report 1.0 has no MRSERVICETD: asking for one fails, naming it
    old = (TEE / "tdx" / "azure_td_quote").read_bytes()
    verdict = check_evidence(old, policy, at=AT)
    assert (verdict.failed_check, verdict.actual) == ("mrservicetd", None)
    assert "mrservicetd" not in verdict.fields


def test_sgx_quotes_of_versions_4_and_5_parse_strictly() -> None:
    """The real SGX v3 quote with its header made v4, and v5 with an SGX body descriptor: no
    real one is among our fixtures, and the header is signed, so these parse and then fail
    their signature (which proves the parse reached it)."""
    from zcbench.tee.dcap import parse_quote

    quote = (TEE / "sgx" / "sgx_quote").read_bytes()
    q = parse_quote(quote)
    sig_data = quote[48 + 384 :]
    v4_header = (4).to_bytes(2, "little") + quote[2:48]
    # v4 puts the QE report data under certification data type 6
    inner = sig_data[4 + 128 :]
    v4 = v4_header + q.body + (128 + 6 + len(inner)).to_bytes(4, "little") + sig_data[4 : 4 + 128]
    v4 += (6).to_bytes(2, "little") + len(inner).to_bytes(4, "little") + inner
    assert parse_quote(v4).version == 4
    assert check_evidence(v4, ANY, at=AT).failed_check in ("signature", "validity")
    v5_header = (5).to_bytes(2, "little") + quote[2:48]
    v5 = v5_header + (1).to_bytes(2, "little") + (384).to_bytes(4, "little") + v4[48:]
    assert (parse_quote(v5).version, parse_quote(v5).body_type) == (5, 1)
    wrong = v5_header + (2).to_bytes(2, "little") + (584).to_bytes(4, "little") + v4[48:]
    verdict = check_evidence(wrong, ANY, at=AT)
    assert (verdict.failed_check, verdict.expected) == ("version", "1/384")


def test_an_azure_hcl_report_verifies_its_snp_report_and_the_runtime_data_binding() -> None:
    hcl = (TEE / "snp" / "azure_genoa_hcl_report.bin").read_bytes()
    vcek = (TEE / "snp" / "azure_genoa_vcek.pem").read_bytes()
    verdict = check_evidence(hcl, ANY, at=AT, certificates=[vcek])
    assert verdict.verified, verdict.message
    inner = check_evidence(hcl[32 : 32 + 0x4A0], ANY, at=AT, certificates=[vcek])
    assert verdict.measurement == inner.measurement
    assert verdict.fields["hcl_runtime_data_hash"] == inner.report_data.hex()[:64]  # type: ignore[union-attr]
    assert any("Azure HCL report" in w for w in verdict.warnings)
    # the runtime data (the vTPM's keys) altered: the report no longer binds it
    at = hcl.index(b'"kid":"HCLAkPub"') + 8
    altered = hcl[:at] + b"X" + hcl[at + 1 :]
    verdict = check_evidence(altered, ANY, at=AT, certificates=[vcek])
    assert (verdict.failed_check, verdict.actual) == ("hcl_binding", inner.report_data.hex())  # type: ignore[union-attr]


def test_malformed_hcl_reports_and_a_tdx_vms_are_refused_saying_why() -> None:
    from zcbench.errors import DataError

    hcl = (TEE / "snp" / "azure_genoa_hcl_report.bin").read_bytes()
    for bad in (hcl[:2000], hcl[:-1] + b"\x01", hcl[:20] + b"\x01" + hcl[21:],
                hcl[:8] + (4000).to_bytes(4, "little") + hcl[12:]):
        with pytest.raises(DataError, match="HCL report"):
            check_evidence(bad, ANY, at=AT)
    tdx = (TEE / "tdx" / "azure_tdx_hcl_report.bin").read_bytes()
    with pytest.raises(DataError, match="verify the TD quote"):
        check_evidence(tdx, ANY, at=AT)


def test_the_cli_verifies_an_hcl_report_and_names_a_tdx_vms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zcbench.cli import main

    hcl = str(TEE / "snp" / "azure_genoa_hcl_report.bin")
    vcek = str(TEE / "snp" / "azure_genoa_vcek.pem")
    assert main(["verify", "attestation", hcl, "--cert", vcek, "--at", "2025-06-01T00:00:00Z",
                 "--json"]) == 0  # fmt: skip
    import json

    assert json.loads(capsys.readouterr().out)["tee"] == "sev-snp"
    tdx = str(TEE / "tdx" / "azure_tdx_hcl_report.bin")
    assert main(["verify", "attestation", tdx, "--at", "2025-06-01T00:00:00Z"]) == 1
    assert "verify the TD quote" in capsys.readouterr().err
