"""Evidence from other origins than the first fixtures (tests/vectors/tee/SOURCES.md, "More
origins"): a second Milan report, an Azure Genoa report, VCEKs that do not chain, a debug TD's
quote and three more TDX quotes, each decided as its source says."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from zcbench.tee import AttestationPolicy, check_evidence

TEE = Path(__file__).resolve().parent / "vectors" / "tee"
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
