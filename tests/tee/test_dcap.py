"""TDX and SGX quotes: the real fixtures decided as tests/vectors/tee/SOURCES.md says, their
corruptions each failing with its named check, and the parser fuzzed."""

from __future__ import annotations

import datetime as dt
import json
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zcbench.errors import DataError, EnvError, UsageError
from zcbench.tee import AttestationError, AttestationPolicy, check_evidence, detect_tee
from zcbench.tee.dcap import (
    Collateral,
    HttpPccs,
    MemoryPccs,
    check_quote,
    load_collateral,
    parse_quote,
    verify_quote,
)

TEE = Path(__file__).resolve().parents[1] / "vectors" / "tee"
TDX = (TEE / "tdx" / "tdx_quote").read_bytes()
TDX5 = (TEE / "tdx" / "tdx_quote_outdated").read_bytes()
SGX = (TEE / "sgx" / "sgx_quote").read_bytes()
TDX_COL = load_collateral(TEE / "tdx" / "tdx_quote_collateral.json")
TDX5_COL = load_collateral(TEE / "tdx" / "tdx_quote_outdated_collateral.json")
SGX_COL = load_collateral(TEE / "sgx" / "sgx_quote_collateral.json")
AT = dt.datetime(2025, 6, 20, 12, tzinfo=dt.UTC)
AT5 = dt.datetime(2026, 2, 19, 12, tzinfo=dt.UTC)
ANY = AttestationPolicy(unsafe_skip_pcr_check=True)


def put(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


# --- the fixtures ----------------------------------------------------------------------------


def test_tdx_v4_verified_up_to_date_with_its_collateral() -> None:
    verdict = check_quote(TDX, ANY, at=AT, collateral=TDX_COL)
    assert verdict.verified, verdict.message
    assert (verdict.tee, verdict.tcb_status, verdict.debug) == ("tdx", "UpToDate", False)
    quote = parse_quote(TDX)
    assert verdict.measurement == quote.body[136:184]
    assert verdict.fields["mrtd"] == quote.body[136:184].hex()
    assert verdict.fields["rtmr3"] == quote.body[472:520].hex()
    assert verdict.report_data == quote.body[520:584]
    assert detect_tee(TDX) == "tdx"


def test_without_collateral_the_tcb_status_is_unknown() -> None:
    verdict = check_quote(TDX, ANY, at=AT)
    assert verdict.verified
    assert verdict.tcb_status == "unknown"
    assert "TCB status unknown" in verdict.message
    assert any("no collateral" in w for w in verdict.warnings)


def test_tdx_v5_outdated_before_its_pck_and_at_its_time() -> None:
    early = check_quote(TDX5, ANY, at=dt.datetime(2026, 1, 20, tzinfo=dt.UTC), collateral=TDX5_COL)
    assert early.failed_check == "validity"
    verdict = check_quote(TDX5, ANY, at=AT5, collateral=TDX5_COL)
    assert (verdict.verified, verdict.failed_check) == (False, "tcb_status")
    assert verdict.tee == "tdx"
    assert parse_quote(TDX5).version == 5
    assert check_quote(TDX5, ANY, at=AT5).verified  # chain and signatures hold


def test_sgx_v3_status_must_be_allowed_by_name() -> None:
    verdict = check_quote(SGX, ANY, at=AT, collateral=SGX_COL)
    assert (verdict.failed_check, verdict.tcb_status) == (
        "tcb_status",
        "ConfigurationAndSWHardeningNeeded",
    )
    assert verdict.advisory_ids == ("INTEL-SA-00289", "INTEL-SA-00615")
    allowed = AttestationPolicy(
        unsafe_skip_pcr_check=True,
        allowed_tcb_statuses=frozenset({"ConfigurationAndSWHardeningNeeded"}),
    )
    ok = check_quote(SGX, allowed, at=AT, collateral=SGX_COL)
    assert ok.verified, ok.message
    assert ok.tee == "sgx"
    assert ok.report_data is not None
    assert ok.report_data.rstrip(b"\0") == b"Hello, world!"
    assert any("TCB statuses other than UpToDate" in w for w in ok.warnings)


def test_measurements_fields_and_report_data() -> None:
    quote = parse_quote(SGX)
    policy = AttestationPolicy(
        expected_measurement=quote.measurement,
        expected_fields={"mrsigner": quote.field("mrsigner")},
        expected_report_data=b"Hello, world!",
    )
    verdict = check_quote(SGX, policy, at=AT)
    assert verdict.verified, verdict.message
    assert verdict.measurement_checked
    bad = check_quote(SGX, AttestationPolicy(expected_measurement=bytes(32)), at=AT)
    assert (bad.failed_check, bad.actual) == ("measurement", quote.measurement.hex())
    wrong_signer = AttestationPolicy(
        unsafe_skip_pcr_check=True, expected_fields={"mrsigner": bytes(32)}
    )
    assert check_quote(SGX, wrong_signer, at=AT).failed_check == "mrsigner"
    nonce = AttestationPolicy(unsafe_skip_pcr_check=True, expected_report_data=b"Hello")
    assert check_quote(SGX, nonce, at=AT).failed_check == "report_data"
    tdx = parse_quote(TDX)
    rtmr = AttestationPolicy(
        expected_measurement=tdx.measurement,
        expected_fields={f"rtmr{i}": tdx.field(f"rtmr{i}") for i in range(4)},
    )
    assert check_quote(TDX, rtmr, at=AT, collateral=TDX_COL).verified
    with pytest.raises(UsageError, match="no field 'mrenclave'"):
        check_quote(
            TDX, AttestationPolicy(unsafe_skip_pcr_check=True, expected_fields={"mrenclave": b"1"}),
            at=AT,
        )


# --- corruption suite ------------------------------------------------------------------------


def _sig_offsets(quote: bytes, body_end: int) -> dict[str, tuple[int, int]]:
    return {"signature": (body_end + 4, body_end + 68), "key": (body_end + 68, body_end + 132)}


@pytest.mark.parametrize(("name", "data", "body_end"), [("tdx", TDX, 632), ("sgx", SGX, 432)])
def test_every_header_and_body_byte_flipped_is_refused(
    name: str, data: bytes, body_end: int
) -> None:
    allowed = {"version", "schema", "signature", "decode"}
    for offset in range(body_end):
        flipped = put(data, offset, bytes([data[offset] ^ 0x01]))
        verdict = check_quote(flipped, ANY, at=AT) if detect_ok(flipped) else None
        if verdict is None:
            continue  # the TEE type itself changed: refused by the dispatch, below
        assert not verdict.verified, f"{name} flip at {offset} verified"
        assert verdict.failed_check in allowed, f"{name} {offset}: {verdict.failed_check}"


def detect_ok(data: bytes) -> bool:
    try:
        detect_tee(data)
    except DataError:
        return False
    return True


@pytest.mark.parametrize(("data", "body_end"), [(TDX, 632), (SGX, 432)])
def test_signature_data_flips_name_their_check(data: bytes, body_end: int) -> None:
    quote = parse_quote(data)
    sig = body_end + 4
    qe = sig + 128 + (6 if quote.version >= 4 else 0)
    cases = {
        sig: "signature",  # the quote signature
        sig + 64: {"signature", "qe_binding"},  # the attestation key
        qe + 10: "qe_report",  # inside the QE report (signed by the PCK key)
        qe + 384: "qe_report",  # the QE report signature
        qe + 384 + 64 + 2: "qe_binding",  # the QE authentication data
    }
    for offset, check in cases.items():
        verdict = check_quote(put(data, offset, bytes([data[offset] ^ 0x01])), ANY, at=AT)
        expected = check if isinstance(check, set) else {check}
        assert verdict.failed_check in expected, (offset, verdict.failed_check)


def test_truncation_and_trailing_bytes() -> None:
    for size in (0, 10, 47, 48, 200, 632, 640, len(SGX) - 1):
        verdict = check_quote(SGX[:size], ANY, at=AT)
        assert verdict.failed_check == "decode", size
    assert check_quote(SGX + b"\x01", ANY, at=AT).failed_check == "decode"
    assert check_quote(TDX[:-1] + b"\x07", ANY, at=AT).failed_check == "decode"
    # zero padding (what TDX quote buffers carry) is allowed and counted
    padded = check_quote(SGX + bytes(8), ANY, at=AT)
    assert padded.verified
    assert padded.fields["padding"] == "8"


def test_length_fields_that_overrun() -> None:
    big = put(SGX, 432, struct.pack("<I", len(SGX)))
    assert check_quote(big, ANY, at=AT).failed_check == "decode"
    small = put(SGX, 432, struct.pack("<I", 10))
    assert check_quote(small, ANY, at=AT).failed_check == "decode"


def test_unknown_versions_and_key_types() -> None:
    assert check_quote(put(SGX, 0, struct.pack("<H", 6)), ANY, at=AT).failed_check == "version"
    # an SGX v4 header over a v3 layout: v4 wants its QE data under certification type 6
    assert check_quote(put(SGX, 0, struct.pack("<H", 4)), ANY, at=AT).failed_check in (
        "schema", "decode")
    assert check_quote(put(TDX, 0, struct.pack("<H", 3)), ANY, at=AT).failed_check == "version"
    assert check_quote(put(TDX, 2, struct.pack("<H", 3)), ANY, at=AT).failed_check == "schema"


def test_wrong_root_and_swapped_chain() -> None:
    quote = parse_quote(SGX)
    pem = quote.pck_chain_pem
    blocks = [b + b"-----END CERTIFICATE-----\n" for b in pem.split(b"-----END CERTIFICATE-----\n")
              if b.strip()]
    assert len(blocks) == 3
    swapped = blocks[1] + blocks[0] + blocks[2]
    assert check_quote(_with_chain(SGX, swapped), ANY, at=AT).failed_check in {"chain", "qe_report"}
    amd = (TEE / "roots" / "amd_milan_ark.pem").read_bytes()
    rooted = blocks[0] + blocks[1] + amd
    assert check_quote(_with_chain(SGX, rooted), ANY, at=AT).failed_check == "root"
    assert check_quote(_with_chain(SGX, blocks[0]), ANY, at=AT).failed_check == "certificate"


def _with_chain(sgx: bytes, chain: bytes) -> bytes:
    """The SGX quote with its PCK chain replaced (the sizes fixed up; nothing re-signed)."""
    size_at = sgx.index(b"-----BEGIN CERTIFICATE-----") - 4
    out = sgx[:size_at] + struct.pack("<I", len(chain)) + chain
    return put(out, 432, struct.pack("<I", len(out) - 436))


def test_collateral_expired_or_for_another_platform() -> None:
    late = check_quote(TDX, ANY, at=dt.datetime(2025, 7, 25, tzinfo=dt.UTC), collateral=TDX_COL)
    assert late.failed_check == "collateral"
    early = check_quote(TDX, ANY, at=dt.datetime(2025, 6, 18, tzinfo=dt.UTC), collateral=TDX_COL)
    assert early.failed_check == "collateral"
    other = check_quote(TDX, ANY, at=AT, collateral=SGX_COL)
    assert other.failed_check == "collateral"
    assert other.expected == "B0C06F000000"


def test_tampered_collateral_refused_by_its_signature() -> None:
    doc = json.loads(TDX_COL.json_text)
    info = json.loads(doc["tcb_info"])
    info["tcbLevels"][0]["tcbStatus"] = "UpToDate"
    info["tcbEvaluationDataNumber"] += 1
    doc["tcb_info"] = json.dumps(info)
    verdict = check_quote(TDX, ANY, at=AT, collateral=Collateral.from_json(json.dumps(doc)))
    assert verdict.failed_check == "collateral"


def test_debug_bits_refused_unless_allowed() -> None:
    from zcbench.tee.dcap import _check_policy

    for data, offset, bit in ((TDX, 48 + 120, 1), (SGX, 48 + 48, 2)):
        quote = parse_quote(put(data, offset, bytes([data[offset] | bit])))
        assert quote.debug
        with pytest.raises(AttestationError) as info:
            _check_policy(quote, ANY)
        assert info.value.check == "debug"
        _check_policy(quote, AttestationPolicy(unsafe_skip_pcr_check=True, allow_debug=True))
        # on the wire the bit is signed: the flipped quote fails its signature first
        flipped = check_quote(quote.raw, ANY, at=AT)
        assert (flipped.failed_check, flipped.debug) == ("signature", True)


def test_collateral_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        load_collateral(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"tcb_info": 1}')
    with pytest.raises(DataError, match="pck_crl_issuer_chain"):
        load_collateral(bad)


def test_pccs_interface() -> None:
    pccs = MemoryPccs({"B0C06F000000": TDX_COL})
    verdict = check_quote(TDX, ANY, at=AT, pccs=pccs)
    assert verdict.verified
    assert verdict.tcb_status == "UpToDate"
    assert pccs.requests == ["B0C06F000000"]
    missing = MemoryPccs()
    with pytest.raises(EnvError, match="no collateral"):
        check_quote(SGX, ANY, at=AT, pccs=missing)
    with pytest.raises(UsageError, match="https"):
        HttpPccs("http://127.0.0.1:9")
    with pytest.raises(UsageError, match="not both"):
        check_quote(TDX, ANY, at=AT, collateral=TDX_COL, pccs=pccs)


def test_raising_verify() -> None:
    with pytest.raises(AttestationError) as info:
        verify_quote(SGX, ANY, at=AT, collateral=SGX_COL)
    assert info.value.check == "tcb_status"
    assert check_evidence(TDX, ANY, at=AT, collateral=TDX_COL).verified


# --- fuzzing -------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_parser_raises_only_attestation_error(data: bytes) -> None:
    try:
        parse_quote(data)
    except AttestationError as exc:
        assert exc.check in {"decode", "version", "schema"}  # noqa: PT017


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(SGX) - 1), st.integers(1, 255))
def test_any_corrupted_byte_of_a_quote_is_refused(offset: int, xor: int) -> None:
    data = put(SGX, offset, bytes([SGX[offset] ^ xor]))
    if not detect_ok(data):
        return
    verdict = check_evidence(data, ANY, at=AT)
    # A flip inside the PEM text can leave the same DER (base64 line breaks); anything else
    # must be refused.
    if verdict.verified:
        assert parse_quote(data).pck_chain_pem != parse_quote(SGX).pck_chain_pem
        assert offset >= len(SGX) - len(parse_quote(SGX).pck_chain_pem)


def test_a_chain_carried_as_der_verifies_the_same() -> None:
    # Some quotes (Intel's own test quotes) carry the type-5 chain as concatenated DER.
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    certs = x509.load_pem_x509_certificates(parse_quote(SGX).pck_chain_pem)
    der = b"".join(c.public_bytes(Encoding.DER) for c in certs)
    verdict = check_quote(_with_chain(SGX, der), ANY, at=AT)
    assert verdict.verified, verdict.message
    assert check_quote(_with_chain(SGX, der + b"\x30"), ANY, at=AT).failed_check == "certificate"
