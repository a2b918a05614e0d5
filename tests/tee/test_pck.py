"""DCAP quotes that name their platform by PPID (PCK certification data types 1-3) or carry
only the PCK leaf (type 4): verified with the PCK chain given, fetched from a PCCS (the
in-memory one here; ``HttpPccs`` is the real client) or, for a leaf, its collateral's PCK CA.

No real quote of those types is among our fixtures: each is a real quote of
tests/vectors/tee (SGX v3, TDX v4) with its certification data rewritten to the type (the
certification data is signed by nothing, so the signatures still hold), said in each test.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dcap_qvl  # type: ignore[import-untyped]
import pytest

from zcbench.cli import main
from zcbench.errors import EnvError, UsageError
from zcbench.tee import AttestationPolicy, check_evidence
from zcbench.tee.dcap import (
    DcapQuote,
    HttpPccs,
    MemoryPccs,
    PckRequest,
    check_quote,
    load_collateral,
    parse_quote,
)

TEE = Path(__file__).resolve().parents[1] / "vectors" / "tee"
SGX_QUOTE = (TEE / "sgx" / "sgx_quote").read_bytes()
TDX_QUOTE = (TEE / "tdx" / "tdx_quote").read_bytes()
AT = dt.datetime(2025, 6, 20, tzinfo=dt.UTC)
ANY = AttestationPolicy(unsafe_skip_pcr_check=True)
PPID = bytes(range(16))
CPUSVN = bytes(range(16, 32))


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "little")


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "little")


def rewritten(quote: bytes, cert_type: int, data: bytes) -> bytes:
    """``quote`` (a real one) with its PCK certification data replaced by ``data`` of
    ``cert_type``: a quote of a type no fixture of ours has."""
    q = parse_quote(quote)
    inner = (q.qe_report + q.qe_report_signature + _u16(len(q.qe_auth_data)) + q.qe_auth_data
             + _u16(cert_type) + _u32(len(data)) + data)
    if q.version != 3:
        inner = _u16(6) + _u32(len(inner)) + inner
    body = q.signature + q.attestation_key + inner
    return q.signed + _u32(len(body)) + body


def ppid_data(cert_type: int = 1) -> bytes:
    ppid = {1: PPID, 2: bytes(256), 3: bytes(384)}[cert_type]
    return ppid + CPUSVN + _u16(0x0D) + b"\x00\x00"


def _outcome(verdict: object) -> tuple[object, ...]:
    return tuple(getattr(verdict, k) for k in ("verified", "failed_check", "tcb_status",
                                               "advisory_ids", "measurement"))  # fmt: skip


def chain_of(quote: bytes) -> bytes:
    return parse_quote(quote).pck_chain_pem


def test_a_ppid_quote_without_its_chain_says_what_to_give() -> None:
    quote = rewritten(SGX_QUOTE, 1, ppid_data(1))
    parsed = parse_quote(quote)
    assert parsed.pck_data_type == 1
    assert parsed.pck_request == PckRequest(PPID, False, CPUSVN, 0x0D, b"\x00\x00")
    verdict = check_quote(quote, ANY, at=AT)
    assert (verdict.failed_check, verdict.actual) == ("certificate", "certification data type 1")
    assert "--pck-chain FILE" in verdict.message
    assert "--pccs URL" in verdict.message


@pytest.mark.parametrize(("source", "quote"), [("sgx", SGX_QUOTE), ("tdx", TDX_QUOTE)])
def test_a_ppid_quote_verifies_with_its_chain_given(source: str, quote: bytes) -> None:
    rewritten_quote = rewritten(quote, 1, ppid_data(1))
    verdict = check_quote(rewritten_quote, ANY, at=AT, pck_chain=chain_of(quote))
    assert verdict.verified, verdict.message
    assert verdict.tee == source
    assert any("given (--pck-chain)" in w for w in verdict.warnings)
    assert verdict.chain == check_quote(quote, ANY, at=AT).chain


def test_an_encrypted_ppid_quote_verifies_with_chain_and_collateral_from_a_pccs() -> None:
    quote = rewritten(SGX_QUOTE, 2, ppid_data(2))
    request = parse_quote(quote).pck_request
    assert request is not None
    assert request.encrypted
    fmspc = str(dcap_qvl.parse_quote(SGX_QUOTE).fmspc()).upper()
    collateral = load_collateral(TEE / "sgx" / "sgx_quote_collateral.json")
    pccs = MemoryPccs({fmspc: collateral}, pck_chains={request.query(): chain_of(SGX_QUOTE)})
    verdict = check_quote(quote, ANY, at=AT, pccs=pccs)
    # decided as the quote it was made from: the same TCB status and advisories
    assert _outcome(verdict) == _outcome(check_quote(SGX_QUOTE, ANY, at=AT, collateral=collateral))
    assert verdict.tcb_status == "ConfigurationAndSWHardeningNeeded"
    allowed = AttestationPolicy(unsafe_skip_pcr_check=True,
                                allowed_tcb_statuses={"ConfigurationAndSWHardeningNeeded"})
    assert check_quote(quote, allowed, at=AT, pccs=pccs).verified
    assert pccs.requests[:2] == [request.query(), fmspc]
    assert request.query().startswith("encrypted_ppid=" + "00" * 256 + "&cpusvn=")


def test_another_platforms_chain_fails_the_qe_report() -> None:
    quote = rewritten(SGX_QUOTE, 3, ppid_data(3))
    verdict = check_quote(quote, ANY, at=AT, pck_chain=chain_of(TDX_QUOTE))
    assert verdict.failed_check == "qe_report"


def test_a_pck_leaf_quote_takes_its_issuers_from_the_collateral_or_a_file() -> None:
    from cryptography import x509

    chain = x509.load_pem_x509_certificates(chain_of(SGX_QUOTE))
    from cryptography.hazmat.primitives.serialization import Encoding

    leaf_der = chain[0].public_bytes(Encoding.DER)
    quote = rewritten(SGX_QUOTE, 4, leaf_der)
    verdict = check_quote(quote, ANY, at=AT)
    assert verdict.failed_check == "certificate"
    assert "--collateral" in verdict.message
    collateral = load_collateral(TEE / "sgx" / "sgx_quote_collateral.json")
    verdict = check_quote(quote, ANY, at=AT, collateral=collateral)
    assert _outcome(verdict) == _outcome(check_quote(SGX_QUOTE, ANY, at=AT, collateral=collateral))
    assert verdict.tcb_status not in (None, "unknown")
    issuers = b"".join(c.public_bytes(Encoding.PEM) for c in chain[1:])
    assert check_quote(quote, ANY, at=AT, pck_chain=issuers).verified
    assert check_quote(quote, ANY, at=AT, pck_chain=chain_of(SGX_QUOTE)).verified


def test_malformed_ppid_data_and_misuse() -> None:
    assert check_quote(rewritten(SGX_QUOTE, 2, ppid_data(1)), ANY, at=AT).failed_check == "schema"
    assert check_quote(rewritten(SGX_QUOTE, 7, b"x"), ANY, at=AT).failed_check == "schema"
    assert check_quote(rewritten(SGX_QUOTE, 4, b""), ANY, at=AT).failed_check == "schema"
    with pytest.raises(UsageError, match="no --pck-chain"):
        check_quote(SGX_QUOTE, ANY, at=AT, pck_chain=chain_of(SGX_QUOTE))
    report = bytes.fromhex((TEE / "snp" / "report_milan.hex").read_text().strip())
    with pytest.raises(UsageError, match="PCK chains are for TDX and SGX"):
        check_evidence(report, ANY, at=AT, pck_chain=b"x")
    with pytest.raises(EnvError, match="no PCK certificate held"):
        MemoryPccs().pck_certificate(PckRequest(PPID, True, CPUSVN, 1, b"\0\0"))
    with pytest.raises(EnvError, match="plain text"):
        HttpPccs("https://pccs.invalid").pck_certificate(PckRequest(PPID, False, CPUSVN, 1,
                                                                    b"\0\0"))  # fmt: skip


def test_the_cli_takes_the_chain_with_pck_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quote = tmp_path / "quote.bin"
    quote.write_bytes(rewritten(SGX_QUOTE, 1, ppid_data(1)))
    chain = tmp_path / "pck.pem"
    chain.write_bytes(chain_of(SGX_QUOTE))
    at = ["--at", "2025-06-20T00:00:00Z"]
    assert main(["verify", "attestation", str(quote), *at]) == 1
    assert "--pck-chain FILE" in capsys.readouterr().out
    assert main(["verify", "attestation", str(quote), "--pck-chain", str(chain), *at,
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["verified"] is True
    report = tmp_path / "snp.hex"
    report.write_text((TEE / "snp" / "report_milan.hex").read_text())
    assert main(["verify", "attestation", str(report), "--pck-chain", str(chain), *at]) == 2


def test_parsed_quotes_keep_the_type_they_carry() -> None:
    assert isinstance(parse_quote(SGX_QUOTE), DcapQuote)
    assert parse_quote(SGX_QUOTE).pck_data_type == 5
    assert parse_quote(SGX_QUOTE).pck_request is None
