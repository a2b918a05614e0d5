"""SEV-SNP reports: the real fixtures decided as tests/vectors/tee/SOURCES.md says, and their
corruptions, each failing with its named check."""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zcbench.errors import EnvError, UsageError
from zcbench.tee import AttestationError, AttestationPolicy
from zcbench.tee.amd_kds import HttpKds, MemoryKds, vcek_path
from zcbench.tee.sevsnp import (
    AMD_ROOT_SHA256,
    REPORT_SIZE,
    TcbVersion,
    _pinned,
    check_snp,
    parse_report,
    verify_snp,
)

TEE = Path(__file__).resolve().parents[1] / "vectors" / "tee"
SNP = TEE / "snp"
ROOTS = TEE / "roots"
AT_MILAN = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
AT_VLEK = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
ANY = AttestationPolicy(unsafe_skip_pcr_check=True)

MILAN_REPORT = bytes.fromhex((SNP / "report_milan.hex").read_text().strip())
MILAN_VCEK = (SNP / "vcek_milan.der").read_bytes()
VLEK_REPORT = (SNP / "vlek_report.bin").read_bytes()
VLEK = (SNP / "vlek.der").read_bytes()


def milan(report: bytes = MILAN_REPORT, policy: AttestationPolicy = ANY, **kw: object):
    certs = kw.pop("certificates", [MILAN_VCEK])
    return check_snp(report, policy, at=kw.pop("at", AT_MILAN), certificates=certs, **kw)


def vlek(report: bytes = VLEK_REPORT, policy: AttestationPolicy = ANY, **kw: object):
    certs = kw.pop("certificates", [VLEK])
    return check_snp(report, policy, at=kw.pop("at", AT_VLEK), certificates=certs, **kw)


def put(report: bytes, offset: int, value: bytes) -> bytes:
    return report[:offset] + value + report[offset + len(value) :]


# --- the fixtures, as SOURCES.md decides them ---------------------------------------------


def test_milan_report_verifies_with_its_vcek() -> None:
    verdict = milan()
    assert verdict.verified, verdict.message
    assert verdict.tee == "sev-snp"
    assert verdict.measurement is not None
    assert verdict.measurement.hex().startswith("7a1e5c266c0108db")
    assert verdict.debug is False
    assert verdict.fields["product"] == "Milan"
    assert verdict.fields["policy"] == "0x0000000000030000"
    assert verdict.fields["smt_allowed"] == "true"
    assert any("SMT" in w for w in verdict.warnings)
    assert verdict.chain[0] == AMD_ROOT_SHA256["Milan"]["ark"]
    assert verdict.tcb_status is None


def test_milan_report_verifies_with_the_kds_chain_file() -> None:
    chain = (SNP / "cert_chain_milan").read_bytes()
    assert milan(certificates=[MILAN_VCEK, chain]).verified


def test_vlek_report_verifies_inside_the_vlek_window_only() -> None:
    verdict = vlek()
    assert verdict.verified, verdict.message
    assert verdict.fields["signing_key"] == "vlek"
    assert verdict.fields["version"] == "3"
    assert verdict.fields["chip_id"] == "00" * 64
    late = vlek(at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert (late.verified, late.failed_check) == (False, "validity")
    early = vlek(at=dt.datetime(2024, 12, 1, tzinfo=dt.UTC))
    assert early.failed_check == "validity"


def test_vlek_report_verifies_with_the_asvk_chain_file() -> None:
    chain = (ROOTS / "amd_milan_ask_ark_asvk.pem").read_bytes()
    assert vlek(certificates=[VLEK, chain]).verified


def test_pinned_fingerprints_match_the_fixture_roots() -> None:
    for product in ("Milan", "Genoa", "Turin"):
        name = product.lower()
        ark = x509.load_pem_x509_certificate((ROOTS / f"amd_{name}_ark.pem").read_bytes())
        ask = x509.load_pem_x509_certificate((ROOTS / f"amd_{name}_ask.pem").read_bytes())
        pinned = _pinned(product)  # type: ignore[arg-type]
        assert pinned["ark"] == ark
        assert pinned["ask"] == ask
    ark_der = (ROOTS / "intel_sgx_root_ca.der").read_bytes()
    assert len(ark_der) > 0


def test_turin_vcek_chains_to_the_turin_root_only() -> None:
    from zcbench.tee.sevsnp import _certificates, _signed_by

    turin = _pinned("Turin")
    (leaf,) = _certificates((SNP / "vcek_turin.der").read_bytes())
    _signed_by(leaf, turin["ask"], "Turin VCEK", "Turin ASK")
    with pytest.raises(AttestationError) as info:
        _signed_by(leaf, _pinned("Genoa")["ask"], "Turin VCEK", "Genoa ASK")
    assert info.value.check == "chain"


def test_turin_tcb_layout() -> None:
    tcb = TcbVersion.unpack(int.from_bytes(bytes([1, 2, 3, 4, 0, 0, 0, 9]), "little"), "Turin")
    assert (tcb.fmc, tcb.boot_loader, tcb.tee, tcb.snp, tcb.microcode) == (1, 2, 3, 4, 9)
    packed = int.from_bytes(bytes([1, 2, 0, 0, 0, 0, 3, 9]), "little")
    milan_tcb = TcbVersion.unpack(packed, "Milan")
    assert milan_tcb.spl() == {"boot_loader": 1, "tee": 2, "snp": 3, "microcode": 9}


# --- policy -------------------------------------------------------------------------------


def test_measurement_and_report_data_checked() -> None:
    report = parse_report(MILAN_REPORT)
    good = AttestationPolicy(
        expected_measurement=report.measurement, expected_report_data=report.report_data
    )
    verdict = milan(policy=good)
    assert verdict.verified
    assert verdict.measurement_checked
    wrong = AttestationPolicy(expected_measurement=bytes(48))
    bad = milan(policy=wrong)
    assert (bad.failed_check, bad.expected, bad.actual) == (
        "measurement",
        "00" * 48,
        report.measurement.hex(),
    )
    nonce = milan(policy=AttestationPolicy(unsafe_skip_pcr_check=True, expected_report_data=b"x"))
    assert nonce.failed_check == "report_data"
    assert nonce.expected == (b"x" + bytes(63)).hex()


def test_expected_fields_checked() -> None:
    host = parse_report(MILAN_REPORT).host_data
    ok = AttestationPolicy(unsafe_skip_pcr_check=True, expected_fields={"host_data": host})
    assert milan(policy=ok).verified
    bad = AttestationPolicy(unsafe_skip_pcr_check=True, expected_fields={"host_data": b"\1" * 32})
    assert milan(policy=bad).failed_check == "host_data"
    with pytest.raises(UsageError, match="no field 'mrtd'"):
        milan(policy=AttestationPolicy(unsafe_skip_pcr_check=True, expected_fields={"mrtd": b"1"}))


@pytest.mark.parametrize(
    "policy",
    [
        AttestationPolicy(expected_pcrs={0: bytes(48)}),
        AttestationPolicy(unsafe_skip_pcr_check=True, nonce=b"n"),
        AttestationPolicy(
            unsafe_skip_pcr_check=True, allowed_tcb_statuses=frozenset({"OutOfDate"})
        ),
    ],
)
def test_requirements_snp_cannot_check_are_refused(policy: AttestationPolicy) -> None:
    with pytest.raises(UsageError):
        milan(policy=policy)


def test_debug_policy_refused_unless_allowed() -> None:
    # The debug bit changes the signed bytes: the signature check comes first and fails, so the
    # debug check is shown on a parsed report directly, as a re-signed report would reach it.
    from zcbench.tee.sevsnp import _check_policy

    policy = struct.unpack_from("<Q", MILAN_REPORT, 8)[0] | (1 << 19)
    report = parse_report(put(MILAN_REPORT, 8, struct.pack("<Q", policy)))
    assert report.debug
    with pytest.raises(AttestationError) as info:
        _check_policy(report, ANY)
    assert info.value.check == "debug"
    _check_policy(report, AttestationPolicy(unsafe_skip_pcr_check=True, allow_debug=True))
    flipped = milan(put(MILAN_REPORT, 8, struct.pack("<Q", policy)))
    assert (flipped.failed_check, flipped.debug) == ("signature", True)


# --- corruption suite -----------------------------------------------------------------------

_RESERVED = {0x4C, *range(0x188, 0x1A0), 0x1EB, 0x1EF, *range(0x1F8, 0x2A0), *range(0x330, 0x4A0)}


def _expected_check(offset: int, flipped: bytes) -> set[str]:
    if offset < 4:
        # 2 ^ 1 is 3: a well-formed version 3 report whose signature no longer holds.
        return {"version", "signature"}
    if offset in _RESERVED or 0x4D <= offset < 0x50:
        return {"reserved"}
    if 0x08 <= offset < 0x10:
        return {"reserved", "signature"}
    if 0x30 <= offset < 0x34:
        return {"schema", "signature"}
    if 0x34 <= offset < 0x38:
        return {"algorithm"}
    if 0x48 <= offset < 0x4C:
        return {"reserved", "schema", "signing_key", "signature"}
    if 0x180 <= offset < 0x188:
        return {"tcb"}
    if 0x1A0 <= offset < 0x1E0:
        return {"chip_id"}
    return {"signature"}


@pytest.mark.slow
def test_every_byte_flipped_fails_with_its_check() -> None:
    for offset in range(REPORT_SIZE):
        flipped = put(MILAN_REPORT, offset, bytes([MILAN_REPORT[offset] ^ 0x01]))
        verdict = milan(flipped)
        assert not verdict.verified, f"flip at 0x{offset:03X} verified"
        assert verdict.failed_check in _expected_check(offset, flipped), (
            f"0x{offset:03X}: {verdict.failed_check}"
        )


@pytest.mark.parametrize("size", [0, 1, 0x2A0, REPORT_SIZE - 1, REPORT_SIZE + 1, 2 * REPORT_SIZE])
def test_wrong_size_is_decode(size: int) -> None:
    data = (MILAN_REPORT * 2)[:size]
    verdict = milan(data)
    assert (verdict.failed_check, verdict.actual) == ("decode", str(size))


def test_unknown_version_refused_with_expected_and_actual() -> None:
    for version in (0, 1, 6, 0xFFFFFFFF):
        verdict = milan(put(MILAN_REPORT, 0, struct.pack("<I", version)))
        assert (verdict.failed_check, verdict.expected, verdict.actual) == (
            "version", "2, 3, 4, 5", str(version))
    assert "upgrade zcbench" in milan(put(MILAN_REPORT, 0, struct.pack("<I", 6))).message


# --- report versions 4 and 5 --------------------------------------------------------------
# No real version 4 or 5 report is among our fixtures: these are the real Milan v2 report
# modified to the later layouts (version, CPUID, mitigation vectors) and re-signed by a test
# AMD chain (tests/tee/support.py) that each test pins for itself alone.

MILAN_CPUID = bytes([0x19, 0x01, 0x01])


def _later(version: int, launch_mit: int = 0, current_mit: int = 0) -> bytes:
    report = put(MILAN_REPORT, 0, struct.pack("<I", version))
    report = put(report, 0x188, MILAN_CPUID)
    if version >= 5:
        report = put(report, 0x1F8, struct.pack("<QQ", launch_mit, current_mit))
    return report


def test_version_5_report_verifies_and_reports_its_mitigation_vectors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.tee.support import chain_for, pin_test_chain, resign

    unsigned = _later(5, launch_mit=0x3, current_mit=0x7)
    chain = chain_for(unsigned)
    report = resign(unsigned, chain.vcek_key)
    # the test chain is pinned nowhere: the report is refused until the test pins it
    assert milan(report, certificates=[chain.vcek_der]).failed_check == "chain"
    pin_test_chain(monkeypatch, chain, "Milan")
    parsed = parse_report(report)
    assert (parsed.version, parsed.cpuid) == (5, (0x19, 0x01, 0x01))
    assert (parsed.launch_mit_vector, parsed.current_mit_vector) == (3, 7)
    verdict = milan(report, certificates=[chain.vcek_der],
                    policy=AttestationPolicy(expected_measurement=MILAN_REPORT[0x90:0xC0]))
    assert verdict.verified, verdict.message
    assert verdict.fields["version"] == "5"
    assert (verdict.fields["launch_mit_vector"], verdict.fields["current_mit_vector"]) == (
        "0x0000000000000003", "0x0000000000000007")
    assert verdict.measurement_checked


def test_version_4_has_version_3_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.tee.support import chain_for, pin_test_chain, resign

    unsigned = _later(4)
    chain = chain_for(unsigned)
    pin_test_chain(monkeypatch, chain, "Milan")
    verdict = milan(resign(unsigned, chain.vcek_key), certificates=[chain.vcek_der])
    assert verdict.verified, verdict.message
    assert "launch_mit_vector" not in verdict.fields
    # version 4 has no mitigation vectors: bytes there are reserved, even signed
    with_vector = put(unsigned, 0x1F8, b"\x01")
    verdict = milan(resign(with_vector, chain.vcek_key), certificates=[chain.vcek_der])
    assert (verdict.failed_check, verdict.actual) == ("reserved", "01" + "00" * 167)


def test_a_report_that_masks_its_chip_id_verifies_by_its_vceks_signature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Modified real report (chip ID zeroed, as MASK_CHIP_ID makes it), re-signed by a test
    chain: the VCEK's hwID cannot be compared, the signature binds it, the verdict says so."""
    from tests.tee.support import make_chain, pin_test_chain, resign

    unsigned = put(MILAN_REPORT, 0x1A0, bytes(64))
    tcb = TcbVersion.unpack(parse_report(unsigned).reported_tcb, "Milan")
    chain = make_chain("Milan", MILAN_REPORT[0x1A0:0x1E0], tcb.spl())
    pin_test_chain(monkeypatch, chain, "Milan")
    verdict = milan(resign(unsigned, chain.vcek_key), certificates=[chain.vcek_der])
    assert verdict.verified, verdict.message
    assert any("masks its chip ID" in w for w in verdict.warnings)
    # another chip's VCEK still fails: its key did not sign this report
    other = make_chain("Milan", bytes(range(64)), tcb.spl())
    assert milan(resign(unsigned, chain.vcek_key),
                 certificates=[other.vcek_der]).failed_check == "signature"  # fmt: skip
    # and KDS cannot be asked for a masked chip's VCEK
    masked_v3 = put(resign(unsigned, chain.vcek_key), 0, struct.pack("<I", 3))
    verdict = milan(put(masked_v3, 0x188, bytes([0x19, 1, 1])), certificates=[], kds=MemoryKds())
    assert verdict.failed_check == "certificate"
    assert "masks its chip ID" in verdict.message


@pytest.mark.parametrize("offset", [0x208, 0x250, 0x29F, 0x18B, 0x19F, 0x4C, 0x1EB])
def test_version_5_reserved_bytes_must_be_zero(
    monkeypatch: pytest.MonkeyPatch, offset: int
) -> None:
    from tests.tee.support import chain_for, pin_test_chain, resign

    unsigned = _later(5, launch_mit=1, current_mit=1)
    chain = chain_for(unsigned)
    pin_test_chain(monkeypatch, chain, "Milan")
    bad = resign(put(unsigned, offset, b"\x80"), chain.vcek_key)
    verdict = milan(bad, certificates=[chain.vcek_der])
    assert (verdict.failed_check, verdict.expected) == ("reserved", "zero")
    assert "80" in str(verdict.actual)


def test_vcek_of_another_chip_or_tcb() -> None:
    other_chip = put(MILAN_REPORT, 0x1A0, bytes(range(1, 65)))
    verdict = milan(other_chip)
    assert (verdict.failed_check, verdict.expected) == ("chip_id", bytes(range(1, 65)).hex())
    # a zeroed chip ID reads as masked: no hwID to compare, so the altered report fails its
    # signature instead
    assert milan(put(MILAN_REPORT, 0x1A0, bytes(64))).failed_check == "signature"
    other_tcb = put(MILAN_REPORT, 0x180, bytes(8))
    verdict = milan(other_tcb)
    assert verdict.failed_check == "tcb"
    assert (verdict.expected, verdict.actual) == ("0", "3")


def test_wrong_product_root_and_swapped_chain() -> None:
    turin_chain = (SNP / "cert_chain_turin").read_bytes()
    assert milan(certificates=[MILAN_VCEK, turin_chain]).failed_check == "root"
    genoa_ask = (ROOTS / "amd_genoa_ask.pem").read_bytes()
    assert milan(certificates=[MILAN_VCEK, genoa_ask]).failed_check == "chain"
    genoa_ark = (ROOTS / "amd_genoa_ark.pem").read_bytes()
    assert milan(certificates=[MILAN_VCEK, genoa_ark]).failed_check == "root"
    # VCEK for a VLEK-signed report and the reverse: the report names its signing key.
    assert vlek(certificates=[MILAN_VCEK]).failed_check == "signing_key"
    assert milan(certificates=[VLEK]).failed_check == "signing_key"
    asvk_chain = (ROOTS / "amd_milan_ask_ark_asvk.pem").read_bytes()
    # AMD's bundle holds the ASK and the ASVK: the one that is not the leaf's issuer is left out.
    assert milan(certificates=[MILAN_VCEK, asvk_chain]).verified
    # An ASK alone is no leaf at all.
    ask_only = (ROOTS / "amd_milan_ask.pem").read_bytes()
    assert milan(certificates=[ask_only]).failed_check == "certificate"
    assert milan(certificates=[]).failed_check == "certificate"
    assert milan(certificates=[b"not a certificate"]).failed_check == "certificate"


def test_vcek_signed_by_another_product() -> None:
    turin_vcek = (SNP / "vcek_turin.der").read_bytes()
    verdict = milan(certificates=[turin_vcek])
    assert verdict.failed_check in {"tcb", "chip_id"}


def test_expired_vcek() -> None:
    assert milan(at=dt.datetime(2031, 1, 1, tzinfo=dt.UTC)).failed_check == "validity"
    assert milan(at=dt.datetime(2023, 1, 1, tzinfo=dt.UTC)).failed_check == "validity"


def test_raising_verify_names_the_check() -> None:
    with pytest.raises(AttestationError) as info:
        verify_snp(MILAN_REPORT[:-1], ANY, at=AT_MILAN, certificates=[MILAN_VCEK])
    assert info.value.check == "decode"
    assert verify_snp(MILAN_REPORT, ANY, at=AT_MILAN, certificates=[MILAN_VCEK]).verified


def test_naive_time_is_misuse() -> None:
    with pytest.raises(UsageError):
        check_snp(MILAN_REPORT, ANY, at=dt.datetime(2025, 1, 1), certificates=[MILAN_VCEK])


# --- KDS ------------------------------------------------------------------------------------


def test_vcek_fetched_through_the_kds_interface_for_v3_reports() -> None:
    # The VLEK report is v3 (it names its CPUID); a VCEK-signed v3 report is simulated by
    # clearing the signing-key bits: the signature then fails, after the fetch and the chain.
    # (A VCEK report names its chip: the Milan fixture's chip ID is put in, as KDS needs it.)
    report = put(put(VLEK_REPORT, 0x48, struct.pack("<I", 0)), 0x1A0, MILAN_REPORT[0x1A0:0x1E0])
    parsed = parse_report(report)
    tcb = TcbVersion.unpack(parsed.reported_tcb, "Milan")
    kds = MemoryKds()
    kds.add("Milan", parsed.chip_id, tcb.spl(), MILAN_VCEK)
    verdict = check_snp(report, ANY, at=AT_MILAN, kds=kds)
    assert kds.requests == [vcek_path("Milan", parsed.chip_id, tcb.spl())]
    assert verdict.failed_check == "tcb"  # the Milan fixture VCEK is another chip's, at 3/0/8/115


def test_kds_paths_and_the_real_client_refuses_plain_http() -> None:
    spl = {"boot_loader": 3, "tee": 0, "snp": 8, "microcode": 115}
    path = vcek_path("Milan", b"\xab" * 64, spl)
    assert path == "/vcek/v1/Milan/" + "ab" * 64 + "?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"
    with pytest.raises(UsageError, match="https"):
        HttpKds("http://127.0.0.1:9")
    with pytest.raises(EnvError, match="no VCEK"):
        MemoryKds().vcek("Milan", b"\0", {})


# --- fuzzing ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=REPORT_SIZE + 8))
def test_parser_never_raises_anything_but_attestation_error(data: bytes) -> None:
    checks = {"decode", "version", "reserved", "schema", "algorithm"}
    try:
        parse_report(data)
    except AttestationError as exc:
        failed = exc.check
    else:
        failed = "decode"  # only the exact size parses; random bytes of it rarely do
    assert failed in checks


@settings(max_examples=150, deadline=None)
@given(st.integers(0, REPORT_SIZE - 1), st.integers(1, 255))
def test_any_corrupted_byte_is_refused(offset: int, xor: int) -> None:
    data = put(MILAN_REPORT, offset, bytes([MILAN_REPORT[offset] ^ xor]))
    assert not milan(data).verified


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(MILAN_VCEK) - 1), st.integers(1, 255))
def test_any_corrupted_vcek_byte_is_refused_with_a_verdict(offset: int, xor: int) -> None:
    vcek = MILAN_VCEK[:offset] + bytes([MILAN_VCEK[offset] ^ xor]) + MILAN_VCEK[offset + 1 :]
    verdict = milan(certificates=[vcek])
    assert not verdict.verified
    assert verdict.failed_check is not None


def test_unsigned_parts_of_the_vcek_must_agree_with_the_signed_ones() -> None:
    # cryptography ignores the outer signatureAlgorithm and the BIT STRING's unused-bits byte;
    # the verifier does not (every byte of the VCEK, flipped, is refused: checked exhaustively
    # when this was written; the fuzz test above samples it).
    from zcbench.tee.sevsnp import _load_der  # AMD's serials warn in cryptography

    tbs_len = len(_load_der(MILAN_VCEK).tbs_certificate_bytes)
    outer = 4 + tbs_len + 10
    unused = MILAN_VCEK.index(b"\x03\x82\x02\x01\x00", 4 + tbs_len) + 4
    for offset in (outer, unused):
        flipped = MILAN_VCEK[:offset] + bytes([MILAN_VCEK[offset] ^ 1]) + MILAN_VCEK[offset + 1 :]
        verdict = milan(certificates=[flipped])
        assert verdict.failed_check in {"algorithm", "certificate"}, offset


# --- the host's certificate table (GHCB), as Linux's extended report and Google Cloud give it


def _table(certs: list[tuple[str, bytes]], *, little_endian: bool) -> bytes:
    import uuid

    n = len(certs) + 1
    offset = n * 24
    entries, data = b"", b""
    for guid, der in certs:
        raw = uuid.UUID(guid).bytes_le if little_endian else uuid.UUID(guid).bytes
        entries += raw + struct.pack("<II", offset + len(data), len(der))
        data += der
    return entries + bytes(24) + data


VCEK_GUID = "63da758d-e664-4564-adc5-f4b93be8accd"
ASK_GUID = "4ab7b379-bbac-4fe4-a02f-05aef327c782"
ARK_GUID = "c0b406a4-a803-4952-9743-3fb6014cd0ae"


@pytest.mark.parametrize("little_endian", [True, False])
def test_a_certificate_table_gives_the_vcek_and_its_chain(little_endian: bool) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    ask, ark = x509.load_pem_x509_certificates((SNP / "cert_chain_milan").read_bytes())
    table = _table([(VCEK_GUID, MILAN_VCEK), (ASK_GUID, ask.public_bytes(Encoding.DER)),
                    (ARK_GUID, ark.public_bytes(Encoding.DER)),
                    ("ecae0c0f-9502-43b1-afa2-0ae2e0d565b6", b"other data")],
                   little_endian=little_endian)  # fmt: skip
    verdict = milan(certificates=[table])
    assert verdict.verified, verdict.message


def test_a_malformed_certificate_table_is_refused() -> None:
    table = _table([(VCEK_GUID, MILAN_VCEK)], little_endian=True)
    past_end = table[:20] + struct.pack("<I", len(MILAN_VCEK) + 1) + table[24:]
    assert milan(certificates=[past_end]).failed_check == "certificate"
    into_table = table[:16] + struct.pack("<I", 8) + table[20:]
    assert milan(certificates=[into_table]).failed_check == "certificate"
    no_end = table[:24] * 17
    verdict = milan(certificates=[no_end])
    assert (verdict.failed_check, verdict.actual) == ("certificate", "none")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.booleans())
def test_certificate_tables_of_any_bytes_give_a_verdict(tail: bytes, little_endian: bool) -> None:
    import uuid

    guid = uuid.UUID(VCEK_GUID)
    verdict = milan(certificates=[(guid.bytes_le if little_endian else guid.bytes) + tail])
    assert not verdict.verified
    assert verdict.failed_check in {"certificate", "signing_key", "chain", "product", "algorithm"}
