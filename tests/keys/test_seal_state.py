"""State an enclave seals for itself: one sealing, bound to its key and label."""

from __future__ import annotations

import cbor2
import pytest

from zcbench.keys import UnsealError, open_state, seal_state, state_key


def test_sealed_state_opens_only_under_its_key_and_label() -> None:
    pcr0_a, pcr0_b = b"\xaa" * 48, b"\xbb" * 48
    key = state_key(b"\x01" * 32, "zcbench.snapshot/1", pcr0_a)
    assert key != state_key(b"\x01" * 32, "zcbench.snapshot/1", pcr0_b)
    assert key != state_key(b"\x02" * 32, "zcbench.snapshot/1", pcr0_a)
    sealed = seal_state(key, "zcbench.snapshot/1", b"the state")
    assert sealed == seal_state(key, "zcbench.snapshot/1", b"the state")  # deterministic
    assert b"the state" not in sealed
    assert open_state(sealed, key, "zcbench.snapshot/1") == b"the state"
    outer = cbor2.loads(sealed)
    flipped = bytearray(outer["ciphertext"])
    flipped[0] ^= 1
    edits = [
        cbor2.dumps({**outer, "ciphertext": bytes(flipped)}, canonical=True),
        cbor2.dumps({**outer, "label": "zcbench.ledger-state/1"}, canonical=True),
        sealed + b"\x00", sealed[:-1], b"",
    ]
    for bad in edits:
        with pytest.raises(UnsealError):
            open_state(bad, key, "zcbench.snapshot/1")
    other = state_key(b"\x01" * 32, "zcbench.snapshot/1", pcr0_b)
    with pytest.raises(UnsealError):
        open_state(sealed, other, "zcbench.snapshot/1")  # another build's key
    with pytest.raises(UnsealError):
        open_state(sealed, key, "zcbench.ledger-state/1")  # sealed for another purpose
