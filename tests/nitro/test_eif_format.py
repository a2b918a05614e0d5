"""EIF reader, writer and PCR0/1/2/8 against the reference's test values and corruptions."""

from __future__ import annotations

import contextlib
import datetime as dt
import struct
import zlib
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.cli import main
from zcbench.nitro.eif import (
    EIF_HEADER_SIZE,
    PCR_EMPTY,
    EifError,
    SectionType,
    format_pcrs,
    measure_eif,
    measure_eif_file,
    pcrs_for_sections,
    write_eif,
)

K = b"K" * 1000
C = b"console=ttyS0"
R0 = b"R0" * 500
R1 = b"R1" * 700
# PCRs of these sections by the algorithm of aws/aws-nitro-enclaves-image-format
# (src/utils/eif_reader.rs: plain SHA-384 per register, then SHA384(0^48 || digest))
PCR0 = (
    "35cc6023e8da0d124523bda5949563862dbaf0fd175db6ab"
    "61991ad6ceb9519a16b5b1e2ef84c95834ecd2dc04439f8d"
)
PCR1 = (
    "b38e4178a1b6c9157c1e877b05860f4bf26faf94b1ef6927"
    "77b628de9264ee6c0bb7f7c1b9a5db19c2aeb5c72686f2ec"
)
PCR2 = (
    "db86dbc3701c37cc57815c7a9edcab27a5641cff97fadccb"
    "b0b8135353c423fcbf6877c9a0f386eadb9c7248d83be8e1"
)
EMPTY = (
    "21b9efbc184807662e966d34f390821309eeac6802309798"
    "826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a"
)

META = b'{"ImageName":"test"}'


def _nitro_order(*ramdisks: bytes) -> list[tuple[SectionType, bytes]]:
    return [
        (SectionType.KERNEL, K),
        (SectionType.CMDLINE, C),
        (SectionType.METADATA, META),
        *[(SectionType.RAMDISK, r) for r in ramdisks],
    ]


def _signature_section(pem: bytes) -> bytes:
    entry = {"signing_certificate": list(pem), "signature": list(b"\x84\x40\xa0\x40\x40")}
    return cbor2.dumps([entry])


def _cert_pem() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eif signer")])
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(when)
        .not_valid_after(when + dt.timedelta(days=1))
        .sign(key, hashes.SHA384())
    )
    return cert.public_bytes(serialization.Encoding.PEM), cert.public_bytes(
        serialization.Encoding.DER
    )


def test_reference_pcr_values() -> None:
    m = measure_eif(write_eif(_nitro_order(R0, R1)))
    assert format_pcrs(m.pcrs) == {"0": PCR0, "1": PCR1, "2": PCR2}
    assert not m.signed
    assert [s.type for s in m.sections] == [
        SectionType.KERNEL,
        SectionType.CMDLINE,
        SectionType.METADATA,
        SectionType.RAMDISK,
        SectionType.RAMDISK,
    ]


def test_no_second_ramdisk_gives_reference_pcr2_constant() -> None:
    m = measure_eif(write_eif(_nitro_order(R0)))
    assert m.pcrs[2].hex() == EMPTY
    assert m.pcrs[2] == PCR_EMPTY


def test_metadata_is_not_measured() -> None:
    a = write_eif(_nitro_order(R0, R1))
    sections = _nitro_order(R0, R1)
    sections[2] = (SectionType.METADATA, b'{"ImageName":"other","BuildTime":"now"}')
    assert measure_eif(a).pcrs == measure_eif(write_eif(sections)).pcrs


def test_pcrs_for_sections_matches_eif() -> None:
    assert pcrs_for_sections(_nitro_order(R0, R1)) == dict(
        measure_eif(write_eif(_nitro_order(R0, R1))).pcrs
    )


def test_signed_eif_gives_pcr8_of_certificate_der() -> None:
    pem, der = _cert_pem()
    eif = write_eif([*_nitro_order(R0, R1), (SectionType.SIGNATURE, _signature_section(pem))])
    m = measure_eif(eif)
    import hashlib

    assert m.signed
    assert m.pcrs[8] == hashlib.sha384(bytes(48) + hashlib.sha384(der).digest()).digest()
    assert m.pcrs[0].hex() == PCR0  # the signature never changes PCR0


def test_version_3_without_metadata_and_2_unsigned() -> None:
    sections = [(SectionType.KERNEL, K), (SectionType.CMDLINE, C), (SectionType.RAMDISK, R0)]
    for version in (2, 3):
        assert measure_eif(write_eif(sections, version=version)).pcrs[1].hex() != EMPTY
    with pytest.raises(EifError, match="metadata"):
        measure_eif(write_eif(sections, version=4))


def _fix_crc(data: bytearray) -> bytes:
    crc = zlib.crc32(bytes(data[EIF_HEADER_SIZE:]), zlib.crc32(bytes(data[:0x220])))
    data[0x220:0x224] = struct.pack(">I", crc)
    return bytes(data)


GOOD = write_eif(_nitro_order(R0, R1))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.__setitem__(slice(0, 4), b"EIF."), "bad magic"),
        (lambda d: d.__setitem__(slice(4, 6), b"\x00\x09"), "version 9"),
        (lambda d: d.__setitem__(slice(0x1A, 0x1C), b"\x00\x21"), "num_sections 33"),
        (lambda d: d.__setitem__(slice(0x1A, 0x1C), b"\x00\x00"), "num_sections 0"),
        (lambda d: d.__setitem__(-1, d[-1] ^ 1), "CRC32 mismatch"),
        (lambda d: d.__setitem__(slice(0x220, 0x224), b"\0\0\0\0"), "CRC32 mismatch"),
        (lambda d: d.extend(b"junk"), "trailing bytes"),
        (lambda d: d.__delitem__(slice(-10, None)), "past the end"),
    ],
)
def test_corruptions_are_named(mutate: object, match: str) -> None:
    data = bytearray(GOOD)
    mutate(data)  # type: ignore[operator]
    with pytest.raises(EifError, match=match):
        measure_eif(bytes(data))


def test_section_size_past_end_even_with_good_crc() -> None:
    data = bytearray(GOOD)
    # last section header sits at offset table[4]; claim it is huge in both places
    off = struct.unpack(">Q", data[0x1C + 8 * 4 : 0x1C + 8 * 5])[0]
    data[0x11C + 8 * 4 : 0x11C + 8 * 5] = struct.pack(">Q", 1 << 40)
    data[off + 4 : off + 12] = struct.pack(">Q", 1 << 40)
    with pytest.raises(EifError, match=r"section 4 .*past the end"):
        measure_eif(_fix_crc(data))


def test_invalid_section_type_and_size_disagreement() -> None:
    data = bytearray(GOOD)
    off = EIF_HEADER_SIZE
    data[off : off + 2] = b"\x00\x07"
    with pytest.raises(EifError, match=r"section 0 .*invalid section type 7"):
        measure_eif(_fix_crc(data))
    data = bytearray(GOOD)
    data[off + 4 : off + 12] = struct.pack(">Q", len(K) - 1)
    with pytest.raises(EifError, match="header table says"):
        measure_eif(_fix_crc(data))


def test_short_and_empty_inputs() -> None:
    for data in (b"", b".eif", GOOD[: EIF_HEADER_SIZE - 1]):
        with pytest.raises(EifError, match="shorter than"):
            measure_eif(data)


def test_writer_refuses_too_many_sections() -> None:
    with pytest.raises(EifError, match=r"1\.\.32"):
        write_eif([(SectionType.RAMDISK, b"x")] * 33)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=len(GOOD) * 8 - 1))
def test_any_bit_flip_is_refused_or_changes_nothing_silently(bit: int) -> None:
    data = bytearray(GOOD)
    data[bit // 8] ^= 1 << (bit % 8)
    try:
        m = measure_eif(bytes(data))
    except EifError:
        return
    # only bits outside the CRC and the measured data may pass (the CRC field's unused neighbour
    # is covered by the CRC, so nothing should pass at all)
    raise AssertionError(f"bit {bit} flipped and still read: {format_pcrs(m.pcrs)}")


def test_measure_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    path = tmp_path / "image.eif"
    path.write_bytes(GOOD)
    assert main(["measure", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {k: out[k] for k in ("0", "1", "2")} == {"0": PCR0, "1": PCR1, "2": PCR2}
    assert "8" not in out
    assert measure_eif_file(path).pcrs[0].hex() == PCR0
    assert main(["measure", str(path)]) == 0
    assert PCR2 in capsys.readouterr().out
    bad = tmp_path / "bad.eif"
    bad.write_bytes(b"nope" + GOOD[4:])
    assert main(["measure", str(bad)]) == 1
    assert "bad.eif" in capsys.readouterr().err
    assert main(["measure", str(tmp_path / "missing.eif")]) == 2


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=700),
    st.integers(min_value=0, max_value=len(GOOD)),
    st.integers(min_value=0, max_value=64),
)
def test_arbitrary_bytes_only_ever_raise_eif_error(junk: bytes, cut: int, extra: int) -> None:
    for data in (junk, GOOD[:cut] + junk[:extra], b".eif" + junk, _fix_crc(bytearray(GOOD[:cut]))):
        with contextlib.suppress(EifError):
            measure_eif(data)


def test_metadata_must_be_a_json_object() -> None:
    assert measure_eif(GOOD).metadata == {"ImageName": "test"}
    for bad in (b"not json", b"[1, 2]", b"\xff"):
        sections = _nitro_order(R0, R1)
        sections[2] = (SectionType.METADATA, bad)
        with pytest.raises(EifError, match=r"section 2 .*metadata"):
            measure_eif(write_eif(sections))


def test_the_signature_section_is_read_by_the_one_strict_cbor_reader() -> None:
    """Any valid encoding nitro-cli may write is read (definite or indefinite lengths, keys in
    any order); a second item, a duplicate key or a semantic tag is refused, not guessed at."""
    import hashlib

    pem, der = _cert_pem()
    pcr8 = hashlib.sha384(bytes(48) + hashlib.sha384(der).digest()).digest()
    cert_ints = cbor2.dumps(list(pem))
    entry_body = b"\x73signing_certificate" + cert_ints + b"\x69signature" + b"\x80"
    good = [
        _signature_section(pem),
        b"\x81\xa2" + entry_body,  # by hand: the same map
        b"\x9f\xbf" + entry_body + b"\xff\xff",  # indefinite array and map
    ]
    for section in good:
        eif = write_eif([*_nitro_order(R0, R1), (SectionType.SIGNATURE, section)])
        assert measure_eif(eif).pcrs[8] == pcr8
    bad = {
        "one CBOR item": _signature_section(pem) + b"\x00",
        "duplicate": b"\x81\xa3" + entry_body + b"\x69signature" + b"\x80",
        "tag": b"\x81\xa2\x73signing_certificate\xd8\x18" + cert_ints + b"\x69signature\x80",
    }
    for why, section in bad.items():
        eif = write_eif([*_nitro_order(R0, R1), (SectionType.SIGNATURE, section)])
        with pytest.raises(EifError, match="signature section") as info:
            measure_eif(eif)
        assert why in str(info.value) or why == "one CBOR item", info.value
