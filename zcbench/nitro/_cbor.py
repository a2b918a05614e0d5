"""The Nitro formats' options for zcbench's one strict CBOR codec (:mod:`zcbench._cbor`).

Attestation documents and NSM messages are read strictly (exactly one item, no duplicate keys,
definite-length strings, no floats or simple values other than ``false``, ``true`` and ``null``,
bounded lengths and nesting) but not canonically: real NSMs write the timestamp as ``1b`` + 8
bytes and may send indefinite-length maps, and such documents are genuine. Tags are returned
as :class:`Tagged` (a document may carry COSE_Sign1's tag 18).
"""

from __future__ import annotations

from typing import Final

from zcbench import _cbor
from zcbench._cbor import CborError, Tagged, Uint64, encode, encode_map_items

__all__ = ["CborError", "Tagged", "Uint64", "decode", "encode", "encode_map_items"]

_MAX_DEPTH: Final = 16


def decode(data: bytes) -> object:
    """Decode exactly one CBOR item of a Nitro format; raise :class:`CborError` if malformed."""
    return _cbor.decode(data, canonical=False, indefinite=True, tags=True, max_depth=_MAX_DEPTH)
