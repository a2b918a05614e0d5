"""A small strict CBOR codec for attestation documents and NSM messages.

Why not ``cbor2.loads``: a verifier must reject what a lenient decoder quietly accepts (trailing
bytes, duplicate map keys, chunked strings, huge declared lengths), and it must tell a definite
map from an indefinite one. This decoder handles exactly the subset the Nitro formats use:
unsigned and negative integers, byte and text strings (definite length only), arrays and maps
(definite or indefinite), tags (returned as :class:`Tagged`), ``false``, ``true`` and ``null``.
Floats, ``undefined`` and other simple values are refused. Every declared length is checked
against the bytes left before anything is allocated, and nesting is bounded, so hostile input
costs time and memory linear in its size.

Decoding errors are :class:`CborError`; callers turn them into their own documented errors.
The encoder writes the same subset; integers are minimal unless a field asks for the 8-byte form
(the attestation ``timestamp`` is always written as ``1b`` + 8 bytes by the real NSM).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["CborError", "Tagged", "Uint64", "decode", "encode", "encode_map_items"]

_MAX_DEPTH = 16


class CborError(ValueError):
    """The bytes are not one well-formed CBOR item of the accepted subset."""


@dataclass(frozen=True)
class Tagged:
    """A tagged item: ``tag(value)``."""

    tag: int
    value: object


@dataclass(frozen=True)
class Uint64:
    """An unsigned integer the encoder writes in the 9-byte form (``1b`` + 8 bytes)."""

    value: int


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos


_BREAK = object()


_ARG_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}


def _item(r: _Reader, depth: int) -> object:
    if depth > _MAX_DEPTH:
        raise CborError(f"nesting deeper than {_MAX_DEPTH}")
    # The head is read inline (not through _Reader's methods): this loop is the parser's
    # hot path, and the verifier's budget is measured against the cryptography alone.
    data = r.data
    start = pos = r.pos
    if pos >= len(data):
        raise CborError(f"truncated at offset {pos}")
    initial = data[pos]
    pos += 1
    major, info = initial >> 5, initial & 0x1F
    if major == 7:
        r.pos = pos
        if info == 20:
            return False
        if info == 21:
            return True
        if info == 22:
            return None
        if info == 31:
            return _BREAK
        raise CborError(f"unsupported simple value or float (0x{initial:02x}) at offset {start}")
    if info == 31:
        r.pos = pos
        if major in (2, 3):
            raise CborError(f"indefinite-length string at offset {start}")
        if major == 4:
            items: list[object] = []
            while True:
                value = _item(r, depth + 1)
                if value is _BREAK:
                    return items
                items.append(value)
        if major == 5:
            return _map_body(r, depth, None, start)
        raise CborError(f"indefinite length not allowed for major type {major} at offset {start}")
    if info < 24:
        arg = info
    else:
        size = _ARG_BYTES.get(info)
        if size is None:
            raise CborError(f"reserved additional information {info} at offset {start}")
        if pos + size > len(data):
            raise CborError(f"truncated: need {size} bytes at offset {pos}")
        arg = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    if major in (2, 3):
        end = pos + arg
        if end > len(data):
            raise CborError(f"truncated: need {arg} bytes at offset {pos}")
        raw = data[pos:end]
        r.pos = end
        if major == 2:
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CborError(f"text string at offset {start} is not UTF-8") from exc
    r.pos = pos
    if major == 0:
        return arg
    if major == 1:
        return -1 - arg
    if major == 4:
        # Every item takes at least one byte: a declared count larger than what is left is a lie.
        if arg > r.remaining():
            raise CborError(f"array of {arg} items at offset {start} exceeds the input")
        out = []
        for _ in range(arg):
            value = _item(r, depth + 1)
            if value is _BREAK:
                raise CborError(f"unexpected break inside array at offset {start}")
            out.append(value)
        return out
    if major == 5:
        if 2 * arg > r.remaining():
            raise CborError(f"map of {arg} pairs at offset {start} exceeds the input")
        return _map_body(r, depth, arg, start)
    # major == 6
    value = _item(r, depth + 1)
    if value is _BREAK:
        raise CborError(f"tag without content at offset {start}")
    return Tagged(arg, value)


def _map_body(r: _Reader, depth: int, count: int | None, start: int) -> dict[object, object]:
    out: dict[object, object] = {}
    n = 0
    while count is None or n < count:
        key = _item(r, depth + 1)
        if key is _BREAK:
            if count is None:
                return out
            raise CborError(f"unexpected break inside map at offset {start}")
        if not isinstance(key, (int, str, bytes)) or isinstance(key, bool):
            raise CborError(f"map key of type {type(key).__name__} in map at offset {start}")
        value = _item(r, depth + 1)
        if value is _BREAK:
            raise CborError(f"map at offset {start} ends between a key and its value")
        if key in out:
            raise CborError(f"duplicate map key {key!r} in map at offset {start}")
        out[key] = value
        n += 1
    return out


def decode(data: bytes) -> object:
    """Decode exactly one CBOR item; trailing bytes, duplicate keys and stray breaks refuse."""
    r = _Reader(bytes(data))
    value = _item(r, 0)
    if value is _BREAK:
        raise CborError("stray break at offset 0")
    if r.pos != len(r.data):
        raise CborError(f"{len(r.data) - r.pos} trailing bytes after the item")
    return value


def _head(major: int, value: int, *, wide: bool = False) -> bytes:
    if value < 0:
        raise CborError("negative argument")
    if wide:
        return bytes([major << 5 | 27]) + struct.pack(">Q", value)
    if value < 24:
        return bytes([major << 5 | value])
    if value < 0x100:
        return bytes([major << 5 | 24, value])
    if value < 0x10000:
        return bytes([major << 5 | 25]) + struct.pack(">H", value)
    if value < 0x100000000:
        return bytes([major << 5 | 26]) + struct.pack(">I", value)
    if value < 0x10000000000000000:
        return bytes([major << 5 | 27]) + struct.pack(">Q", value)
    raise CborError("integer does not fit in 64 bits")


def encode(value: object) -> bytes:
    """Encode ``value`` (definite lengths; dicts in their own key order)."""
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, Uint64):
        return _head(0, value.value, wide=True)
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return _head(2, len(raw)) + raw
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _head(3, len(raw)) + raw
    if isinstance(value, (list, tuple)):
        return _head(4, len(value)) + b"".join(encode(v) for v in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + encode_map_items(value.items())
    if isinstance(value, Tagged):
        return _head(6, value.tag) + encode(value.value)
    raise CborError(f"cannot encode {type(value).__name__}")


def encode_map_items(items: object) -> bytes:
    """The concatenated key/value encodings of ``items`` (an iterable of pairs), no header."""
    out = bytearray()
    for key, value in items:  # type: ignore[attr-defined]
        out += encode(key)
        out += encode(value)
    return bytes(out)
