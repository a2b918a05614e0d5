"""Deterministic sealing: same inputs and key give the same bytes; tampering is opaque."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.errors import DataError
from zcbench.keys import DataKey, UnsealError, read_sealed_header, seal_strategy, unseal_strategy

KEY = DataKey(plaintext=b"\x11" * 32, ciphertext_blob=b"blob", key_id="zcbench:local:key/test")
SOURCE = "class Secret:\n    def on_batch(self, batch):\n        return []\n"


def test_deterministic_and_round_trip() -> None:
    a = seal_strategy(SOURCE, {"fast": 3, "slow": 8}, strategy="s", data_key=KEY)
    b = seal_strategy(SOURCE, {"slow": 8, "fast": 3}, strategy="s", data_key=KEY)
    assert a == b
    opened = unseal_strategy(a, KEY.plaintext)
    assert opened.module_source == SOURCE
    assert opened.parameters == {"fast": 3, "slow": 8}
    assert opened.strategy == "s"
    assert SOURCE not in repr(opened)
    header = read_sealed_header(a)
    assert (header.strategy, header.key_id, header.data_key_blob) == ("s", KEY.key_id, b"blob")


def test_different_inputs_give_different_nonces() -> None:
    a = cbor2.loads(seal_strategy(SOURCE, {}, strategy="s", data_key=KEY))
    b = cbor2.loads(seal_strategy(SOURCE + " ", {}, strategy="s", data_key=KEY))
    assert a["nonce"] != b["nonce"]


def test_no_readable_source() -> None:
    sealed = seal_strategy(SOURCE, {"fast": 3}, strategy="s", data_key=KEY)
    for needle in (b"Secret", b"on_batch", b"class ", b"fast"):
        assert needle not in sealed


def test_wrong_key_and_tampering_are_opaque() -> None:
    sealed = seal_strategy(SOURCE, {}, strategy="s", data_key=KEY)
    with pytest.raises(UnsealError) as info:
        unseal_strategy(sealed, b"\x22" * 32)
    assert str(info.value) == "sealed payload could not be opened"
    value = cbor2.loads(sealed)
    for field, new in (("strategy", "t"), ("key_id", "other"), ("data_key_blob", b"x")):
        forged = cbor2.dumps({**value, field: new}, canonical=True)
        with pytest.raises(UnsealError):
            unseal_strategy(forged, KEY.plaintext)
    with pytest.raises(UnsealError):
        unseal_strategy(sealed + b"\x00", KEY.plaintext)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_any_bit_flip_refused(data: st.DataObject) -> None:
    sealed = seal_strategy(SOURCE, {"a": 1}, strategy="s", data_key=KEY)
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    flipped = bytearray(sealed)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(UnsealError):
        unseal_strategy(bytes(flipped), KEY.plaintext)


def test_header_errors_and_bad_parameters() -> None:
    with pytest.raises(DataError):
        read_sealed_header(b"")
    with pytest.raises(DataError):
        read_sealed_header(cbor2.dumps({"v": 1}))
    with pytest.raises(DataError, match="plain data"):
        seal_strategy(SOURCE, {"f": object()}, strategy="s", data_key=KEY)
    with pytest.raises(DataError):
        DataKey(plaintext=b"short", ciphertext_blob=b"", key_id="k")


def test_the_sealed_plaintext_is_written_by_zcbench_cbor_byte_for_byte_as_before() -> None:
    """The sealed content's hash is in the measured image (PCR0): the writer moved onto
    zcbench._cbor without changing a byte of what cbor2's canonical writer gave."""
    import hashlib

    import cbor2

    from zcbench.keys import sealed_content_sha256

    source = "def on_batch(batch):\n    return []\n"
    parameters = {"fast": 20, "slow": 50, "threshold": 0.35, "tiny": 1e-300, "neg": -0.0,
                  "symbols": ["AAA", "BBB"], "quantity": 100, "enabled": True, "note": None}
    before = cbor2.dumps({"module": source, "parameters": parameters}, canonical=True)
    assert sealed_content_sha256(source, parameters) == hashlib.sha256(before).hexdigest()


def test_parameters_that_could_never_unseal_are_refused_when_sealing() -> None:
    import datetime as dt

    from zcbench.errors import DataError
    from zcbench.keys import sealed_content_sha256

    with pytest.raises(DataError, match="not plain data"):
        sealed_content_sha256("x = 1\n", {"start": dt.date(2026, 1, 1)})
