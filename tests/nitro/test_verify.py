"""Verification of the real documents under the pinned AWS root, and of emulated ones."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from zcbench.errors import EnvError, UsageError
from zcbench.nitro import (
    AWS_ROOT_G1_SHA256,
    AttestationError,
    DevCA,
    NsmEmulator,
    check_attestation,
    load_trust_root,
    parse_document,
    verify_attestation,
)
from zcbench.nitro import trust as trust_module

DOCS = [1, 2, 3, 4]
NOW = dt.datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)


def _real(vectors: Path, n: int) -> tuple[bytes, dict[str, object]]:
    facts = json.loads((vectors / f"doc_{n}.json").read_text())["facts"]
    return (vectors / f"doc_{n}.cbor").read_bytes(), facts


def _stated_pcrs(facts: dict[str, object]) -> dict[int, bytes] | None:
    stated = facts["pcrs_stated_by_source"]
    if not stated:
        return None
    assert isinstance(stated, dict)
    return {int(i): bytes.fromhex(v) for i, v in stated["values"].items()}


@pytest.mark.parametrize("n", DOCS)
def test_real_documents_verify_at_their_own_time_and_fail_four_hours_later(
    nitro_vectors: Path, n: int
) -> None:
    data, facts = _real(nitro_vectors, n)
    debug = bool(facts["debug_mode_pcr0_1_2_zero"])
    at = parse_document(data).time
    assert at.isoformat(timespec="milliseconds").replace("+00:00", "Z") == facts["timestamp_utc"]
    expected = _stated_pcrs(facts)
    kwargs: dict[str, object] = (
        {"expected_pcrs": expected} if expected else {"unsafe_skip_pcr_check": True}
    )
    result = verify_attestation(data, trust="aws", at=at, allow_debug=debug, **kwargs)  # type: ignore[arg-type]
    assert result.root == "aws"
    assert not result.simulated
    assert result.debug is debug
    assert result.pcrs_checked is bool(expected)
    if expected:
        assert result.checked_pcrs == tuple(sorted(expected))
        for index, value in expected.items():
            assert result.document.pcrs[index] == value
    assert [c.ca for c in result.chain] == [True, True, True, True, False]
    assert result.chain[0].sha256 == AWS_ROOT_G1_SHA256
    assert (
        result.chain[-1]
        .not_before.isoformat()
        .startswith(str(facts["leaf_not_before"]).rstrip("Z"))
    )

    with pytest.raises(AttestationError) as exc:
        verify_attestation(
            data,
            at=at + dt.timedelta(hours=4),
            allow_debug=debug,
            **kwargs,  # type: ignore[arg-type]
        )
    assert exc.value.check == "validity"
    assert "expired" in str(exc.value)

    if debug:
        with pytest.raises(AttestationError) as exc:
            verify_attestation(data, at=at, **kwargs)  # type: ignore[arg-type]
        assert exc.value.check == "debug"


def test_blindai_expectations_for_doc_4(nitro_vectors: Path) -> None:
    # mithril-security/blindai client/tests/nitro_attestation_test.py: passes at the
    # timestamp with PCR0 = 48 zero bytes, fails at 18:28:27.405.
    data = (nitro_vectors / "doc_4.cbor").read_bytes()
    at = dt.datetime(2023, 3, 22, 14, 28, 27, 405000, tzinfo=dt.UTC)
    verify_attestation(data, at=at, expected_pcrs={0: bytes(48)}, allow_debug=True)
    report = check_attestation(
        data, at=at.replace(hour=18), expected_pcrs={0: bytes(48)}, allow_debug=True
    )
    assert not report.verified
    assert report.failed_check == "validity"


def test_doc_1_with_all_sidecar_pcrs_and_its_nonce(nitro_vectors: Path) -> None:
    data, facts = _real(nitro_vectors, 1)
    doc = parse_document(data)
    assert doc.nonce is not None
    result = verify_attestation(
        data,
        at=doc.time + dt.timedelta(minutes=30),
        expected_pcrs=_stated_pcrs(facts),
        nonce=doc.nonce,
        max_age=dt.timedelta(hours=1),
    )
    assert result.checked_pcrs == (0, 1, 2, 8)
    assert not result.debug


def test_emulated_document_verifies_under_dev_and_fails_under_aws() -> None:
    pcrs = {0: b"\x10" * 48, 1: b"\x11" * 48, 2: b"\x12" * 48}
    emulator = NsmEmulator(pcrs, DevCA.load_or_create(now=NOW), clock=lambda: NOW)
    data = emulator.attestation(nonce=b"lp-nonce", user_data=b"ud", public_key=b"pk")
    result = verify_attestation(
        data,
        trust="dev",
        at=NOW,
        expected_pcrs=pcrs,
        nonce=b"lp-nonce",
        expected_user_data=b"ud",
        expected_public_key=b"pk",
        max_age=dt.timedelta(seconds=1),
    )
    assert result.simulated
    assert result.root == "dev"
    assert result.pcrs_checked
    report = check_attestation(data, trust="aws", at=NOW, expected_pcrs=pcrs)
    assert not report.verified
    assert report.failed_check == "root"
    assert report.expected == AWS_ROOT_G1_SHA256
    assert "--trust dev" in report.message
    assert report.document is not None  # what was learnt before the failure
    assert len(report.chain) == 5


def test_indefinite_emulated_document_verifies() -> None:
    pcrs = {0: b"\x20" * 48, 1: b"\x21" * 48, 2: b"\x22" * 48}
    emulator = NsmEmulator(pcrs, clock=lambda: NOW, indefinite_payload=True)
    data = emulator.attestation(nonce=b"n")
    doc = parse_document(data)
    assert doc.indefinite
    assert doc.payload[0] == 0xBF
    assert doc.payload[-1] == 0xFF
    verify_attestation(data, trust="dev", at=NOW, expected_pcrs=pcrs, nonce=b"n")


def test_a_dev_root_passed_as_a_file_is_still_simulated(tmp_path: Path) -> None:
    pcrs = {0: b"\x30" * 48, 1: b"\x31" * 48, 2: b"\x32" * 48}
    ca = DevCA.load_or_create(tmp_path / "elsewhere", now=NOW)
    data = NsmEmulator(pcrs, ca, clock=lambda: NOW).attestation()
    result = verify_attestation(data, trust=ca.root_pem, at=NOW, expected_pcrs=pcrs)
    fingerprint = load_trust_root(ca.root_pem).fingerprint
    assert result.trust_root.kind == "dev"
    assert result.trust_root.fingerprint == fingerprint
    assert result.simulated
    assert result.trust_root.description.startswith("SIMULATED")
    assert fingerprint in result.trust_root.description
    # the dev root in the home is another CA: refused there
    DevCA.load_or_create(now=NOW)
    assert check_attestation(data, trust="dev", at=NOW, expected_pcrs=pcrs).failed_check == ("root")


def test_misuse_is_refused_before_any_check(nitro_vectors: Path) -> None:
    data = (nitro_vectors / "doc_1.cbor").read_bytes()
    at = parse_document(data).time
    with pytest.raises(UsageError, match="unsafe_skip_pcr_check"):
        verify_attestation(data, at=at)
    with pytest.raises(UsageError, match="empty"):
        verify_attestation(data, at=at, expected_pcrs={})
    with pytest.raises(UsageError, match="not both"):
        verify_attestation(data, at=at, expected_pcrs={0: b"x"}, unsafe_skip_pcr_check=True)
    with pytest.raises(UsageError, match="timezone"):
        verify_attestation(data, at=at.replace(tzinfo=None), unsafe_skip_pcr_check=True)
    with pytest.raises(UsageError, match="unknown trust"):
        verify_attestation(data, at=at, trust="AWS", unsafe_skip_pcr_check=True)
    with pytest.raises(UsageError, match=r"0\.\.31"):
        verify_attestation(data, at=at, expected_pcrs={32: bytes(48)})
    with pytest.raises(UsageError, match="negative"):
        verify_attestation(
            data, at=at, unsafe_skip_pcr_check=True, max_age=dt.timedelta(seconds=-1)
        )


def test_dev_trust_without_a_dev_ca_is_an_environment_error(nitro_vectors: Path) -> None:
    data = (nitro_vectors / "doc_1.cbor").read_bytes()
    with pytest.raises(EnvError, match="no development CA"):
        check_attestation(data, trust="dev", at=NOW, unsafe_skip_pcr_check=True)


def test_a_damaged_packaged_root_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nitro_vectors: Path
) -> None:
    # A look-alike file in place of the packaged root must not load: the fingerprint is pinned.
    fake_pkg = tmp_path / "pkg"
    (fake_pkg / "roots").mkdir(parents=True)
    ca = DevCA.load_or_create(tmp_path / "ca", now=NOW)
    shutil.copy(ca.root_pem, fake_pkg / "roots" / "aws_nitro_root_g1.pem")

    class _Files:
        def files(self, _package: str) -> Path:
            return fake_pkg

    trust_module._aws_root.cache_clear()
    monkeypatch.setattr(trust_module.importlib, "resources", _Files())
    try:
        with pytest.raises(EnvError, match="damaged"):
            load_trust_root("aws")
    finally:
        monkeypatch.undo()
        trust_module._aws_root.cache_clear()
    assert load_trust_root("aws").fingerprint == AWS_ROOT_G1_SHA256


def test_report_error_round_trips_the_failed_check(nitro_vectors: Path) -> None:
    data = (nitro_vectors / "doc_1.cbor").read_bytes()
    at = parse_document(data).time
    report = check_attestation(data, at=at, expected_pcrs={0: bytes(48)})
    assert report.failed_check == "pcr0"
    assert report.actual is not None
    assert report.actual.startswith("f4d48b81")
    assert report.expected == "00" * 48
    error = report.error()
    assert error.check == "pcr0"
    assert error.expected == report.expected
    ok = check_attestation(data, at=at, unsafe_skip_pcr_check=True)
    assert ok.verified
    assert not ok.pcrs_checked
    with pytest.raises(UsageError):
        ok.error()


# -- one document, many encodings: identity is the payload -------------------------------------

P384_N = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffff"
    "c7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)


def _bstr(value: bytes, *, width: int | None = None) -> bytes:
    n = len(value)
    if width is None:
        width = 0 if n < 24 else 1 if n < 256 else 2 if n < 65536 else 4
    if width == 0:
        return bytes([0x40 | n]) + value
    info = {1: 24, 2: 25, 4: 26, 8: 27}[width]
    return bytes([0x40 | info]) + n.to_bytes(width, "big") + value


def _encodings(data: bytes) -> dict[str, bytes]:
    """Re-encodings of one genuine document that keep its signed payload byte for byte."""
    doc = parse_document(data)
    r, s = doc.signature[:48], int.from_bytes(doc.signature[48:], "big")
    other = r + (P384_N - s).to_bytes(48, "big")  # the other valid ECDSA signature

    def envelope(unprotected: bytes = b"\xa0", width: int | None = None, sig: bytes = b"") -> bytes:
        return (b"\x84" + _bstr(doc.protected) + unprotected + _bstr(doc.payload, width=width)
                + _bstr(sig or doc.signature))  # fmt: skip

    return {
        "other_signature": envelope(sig=other),
        "tag_18": b"\xd2" + envelope(),
        "payload_length_in_8_bytes": envelope(width=8),
        "unprotected_map_indefinite": envelope(unprotected=b"\xbf\xff"),
        "unprotected_map_count_in_1_byte": envelope(unprotected=b"\xb8\x00"),
    }


@pytest.mark.parametrize("n", DOCS)
def test_every_encoding_of_a_real_document_has_the_one_document_id(
    nitro_vectors: Path, n: int
) -> None:
    data, _ = _real(nitro_vectors, n)
    original = parse_document(data)
    identities = {original.document_id}
    verified = 0
    for name, variant in _encodings(data).items():
        assert variant != data
        report = check_attestation(variant, at=original.time, unsafe_skip_pcr_check=True,
                                   allow_debug=True)  # fmt: skip
        if report.failed_check == "decode" and name not in ("other_signature", "tag_18"):
            continue  # a strict reader may refuse a non-shortest form: never a second identity
        assert report.verified, (name, report.message)
        assert report.document is not None
        identities.add(report.document.document_id)
        assert report.to_dict()["document_id"] == original.document_id
        verified += 1
    assert identities == {original.document_id}
    assert verified >= 2  # at least the other signature and the tagged envelope verify


@pytest.mark.parametrize("n", DOCS)
def test_the_re_signed_twin_of_a_document_has_its_document_id(
    nitro_vectors: Path, n: int
) -> None:
    # What a replay cache or de-duplication keys on: the same for the re-signed twin.
    data, _ = _real(nitro_vectors, n)
    twin = _encodings(data)["other_signature"]
    a = verify_attestation(data, at=parse_document(data).time, unsafe_skip_pcr_check=True,
                           allow_debug=True)  # fmt: skip
    b = verify_attestation(twin, at=parse_document(twin).time, unsafe_skip_pcr_check=True,
                           allow_debug=True)  # fmt: skip
    assert a.document.signature != b.document.signature
    assert a.document.document_id == b.document.document_id


# -- the policy -------------------------------------------------------------------------------


def test_a_policy_is_checked_once_when_made_and_frozen(nitro_vectors: Path) -> None:
    from zcbench.nitro import AttestationPolicy

    with pytest.raises(UsageError, match="no expected PCRs"):
        AttestationPolicy()
    with pytest.raises(UsageError, match="not both"):
        AttestationPolicy(expected_pcrs={0: b"\x00" * 48}, unsafe_skip_pcr_check=True)
    with pytest.raises(UsageError, match=r"0\.\.31"):
        AttestationPolicy(expected_pcrs={32: b"\x00" * 48})
    with pytest.raises(UsageError, match="negative"):
        AttestationPolicy(unsafe_skip_pcr_check=True, max_age=dt.timedelta(seconds=-1))
    with pytest.raises(UsageError, match="bytes"):
        AttestationPolicy(unsafe_skip_pcr_check=True, nonce="abc")  # type: ignore[arg-type]
    policy = AttestationPolicy(expected_pcrs={2: b"\x02" * 48, 0: b"\x00" * 48})
    assert policy.checked_pcrs == (0, 2)
    with pytest.raises(TypeError):
        policy.expected_pcrs[1] = b"\x01" * 48  # type: ignore[index]
    with pytest.raises(AttributeError):
        policy.nonce = b"x"  # type: ignore[misc]
    data = (nitro_vectors / "doc_1.cbor").read_bytes()
    with pytest.raises(UsageError, match="not both"):
        check_attestation(data, policy, at=NOW, nonce=b"x")


def test_an_unsafe_policy_warns_on_every_use(
    nitro_vectors: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from zcbench.nitro import AttestationPolicy

    data, _ = _real(nitro_vectors, 1)
    at = parse_document(data).time
    unsafe = AttestationPolicy(unsafe_skip_pcr_check=True, allow_debug=True)
    assert len(unsafe.unsafe) == 2
    with caplog.at_level("WARNING", logger="zcbench.nitro"):
        for _ in range(3):
            report = check_attestation(data, unsafe, at=at)
            assert report.verified
            assert report.warnings == unsafe.unsafe
            assert report.to_dict()["warnings"] == list(unsafe.unsafe)
    assert len([r for r in caplog.records if "unsafe attestation policy" in r.message]) == 6
    caplog.clear()
    safe = AttestationPolicy(expected_pcrs={0: parse_document(data).pcrs[0]})
    with caplog.at_level("WARNING", logger="zcbench.nitro"):
        assert check_attestation(data, safe, at=at).warnings == ()
    assert not caplog.records
