"""The attestation codec against the real documents and hand-made edge cases."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cbor2
import pytest

from zcbench.nitro import AttestationError, parse_document
from zcbench.nitro._cbor import CborError, decode
from zcbench.nitro.document import encode_document, encode_payload, sig_structure

DOCS = [1, 2, 3, 4]


def _load(vectors: Path, n: int) -> tuple[bytes, dict[str, object]]:
    data = (vectors / f"doc_{n}.cbor").read_bytes()
    sidecar = json.loads((vectors / f"doc_{n}.json").read_text())
    return data, sidecar


@pytest.mark.parametrize("n", DOCS)
def test_real_document_fields_match_sidecar(nitro_vectors: Path, n: int) -> None:
    data, sidecar = _load(nitro_vectors, n)
    assert hashlib.sha256(data).hexdigest() == sidecar["sha256_of_file"]
    facts = sidecar["facts"]
    assert isinstance(facts, dict)
    doc = parse_document(data)
    assert doc.timestamp == facts["timestamp_ms"]
    assert (
        doc.time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        == (facts["timestamp_utc"])
    )
    assert doc.digest == "SHA384"
    assert sorted(doc.pcrs) == list(range(16))
    assert all(len(v) == 48 for v in doc.pcrs.values())
    stated = facts["pcrs_stated_by_source"]
    if stated:
        for index, value in stated["values"].items():
            assert doc.pcrs[int(index)].hex() == value
    for name in ("public_key", "user_data", "nonce"):
        fact = facts[name]
        value = getattr(doc, name)
        if fact is None:
            assert value is None
        else:
            assert value is not None
            assert len(value) == fact["len"]
            assert hashlib.sha256(value).hexdigest() == fact["sha256"]
    assert len(doc.cabundle) == 4
    assert not doc.tagged
    assert not doc.indefinite
    assert doc.module_id.startswith("i-")
    assert "-enc" in doc.module_id


def test_sig_structure_prefix_matches_reference(nitro_vectors: Path) -> None:
    doc = parse_document((nitro_vectors / "doc_1.cbor").read_bytes())
    assert doc.signed_bytes().hex().startswith("846a5369676e61747572653144a1013822405911c2a9")
    assert sig_structure(doc.protected, doc.payload) == doc.signed_bytes()


@pytest.mark.parametrize("n", DOCS)
def test_encoder_reproduces_real_documents_byte_for_byte(nitro_vectors: Path, n: int) -> None:
    data, _ = _load(nitro_vectors, n)
    doc = parse_document(data)
    payload = encode_payload(
        module_id=doc.module_id,
        timestamp=doc.timestamp,
        pcrs=doc.pcrs,
        certificate=doc.certificate,
        cabundle=doc.cabundle,
        public_key=doc.public_key,
        user_data=doc.user_data,
        nonce=doc.nonce,
    )
    assert payload == doc.payload
    assert encode_document(payload, doc.signature) == data


@pytest.mark.parametrize("n", DOCS)
def test_tag_18_and_indefinite_payload_parse_to_the_same_fields(
    nitro_vectors: Path, n: int
) -> None:
    data, _ = _load(nitro_vectors, n)
    doc = parse_document(data)
    tagged = parse_document(b"\xd2" + data)
    assert tagged.tagged
    assert tagged.payload == doc.payload
    indefinite_payload = b"\xbf" + doc.payload[1:] + b"\xff"
    re_framed = parse_document(encode_document(indefinite_payload, doc.signature))
    assert re_framed.indefinite
    assert re_framed.payload == indefinite_payload  # kept verbatim, never re-encoded
    for name in ("module_id", "timestamp", "pcrs", "certificate", "cabundle", "nonce"):
        assert getattr(re_framed, name) == getattr(doc, name)


def test_omitted_optional_fields_read_as_absent(nitro_vectors: Path) -> None:
    doc = parse_document((nitro_vectors / "doc_2.cbor").read_bytes())
    fields = cbor2.loads(doc.payload)
    for key in ("public_key", "user_data", "nonce"):
        del fields[key]
    parsed = parse_document(encode_document(cbor2.dumps(fields), doc.signature))
    assert parsed.public_key is None
    assert parsed.user_data is None
    assert parsed.nonce is None


def test_instance_id_is_module_id_before_enc(nitro_vectors: Path) -> None:
    doc = parse_document((nitro_vectors / "doc_1.cbor").read_bytes())
    assert doc.instance_id == "i-020b6af9246d90e92"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "truncated"),
        (b"\x01\x02", "trailing"),
        (b"\xa2\x01\x01\x01\x02", "duplicate"),
        (b"\x5f\x41\x00\xff", "indefinite-length string"),
        (b"\xfb\x00\x00\x00\x00\x00\x00\x00\x00", "float"),
        (b"\xf7", "simple"),
        (b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff", "exceeds"),
        (b"\x5b\x7f\xff\xff\xff\xff\xff\xff\xff", "truncated"),
        (b"\xbb\x00\xff\xff\xff\xff\xff\xff\xff", "exceeds"),
        (b"\xff", "stray break"),
        (b"\x1c", "reserved"),
        (b"\x81" * 40 + b"\x00", "nesting"),
        (b"\x62\xc3\x28", "UTF-8"),
        (b"\xa1\x80\x00", "map key"),
        (b"\xbf\x01\xff", "between a key"),
    ],
)
def test_strict_cbor_refuses(data: bytes, why: str) -> None:
    with pytest.raises(CborError, match=why):
        decode(data)


def test_strict_cbor_accepts_indefinite_containers() -> None:
    assert decode(b"\xbf\x61a\x01\xff") == {"a": 1}
    assert decode(b"\x9f\x01\x02\xff") == [1, 2]


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x84\x40\xa0\x40\x40", b"\xd8\x62\x80"])
def test_parse_refuses_non_documents_with_the_documented_error(data: bytes) -> None:
    with pytest.raises(AttestationError) as exc:
        parse_document(data)
    assert exc.value.check in {"decode", "schema", "algorithm", "signature"}


def test_parse_refuses_oversize_input_before_decoding() -> None:
    with pytest.raises(AttestationError, match="at most") as exc:
        parse_document(b"\x00" * 100_000)
    assert exc.value.check == "decode"
