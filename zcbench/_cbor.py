"""The one strict CBOR reader of zcbench, and the small writer the Nitro formats need.

Every format zcbench decodes goes through :func:`decode`: attestation documents and NSM
messages, log records, channel frames, batches, signals, exported slices, sealed payloads and
``user_data``. What every caller gets, whatever its options:

* exactly one item: trailing bytes, a stray break and truncation refuse;
* no duplicate map keys; map keys are integers, text or byte strings;
* definite-length strings; indefinite arrays and maps only where the format allows them;
* only integers of 64 bits (no bignum tags), strings, arrays, maps, ``false``, ``true``,
  ``null``; tags and floats only where the format allows them;
* bounded: the input is at most ``max_bytes``, nesting at most ``max_depth``, and every declared
  length is checked against the bytes left before anything is allocated, so hostile input costs
  time and memory linear in its size.

A format that is deterministic (``canonical=True``: everything zcbench itself writes) also gets
RFC 8949 §4.2.3 canonical form: shortest integer and length heads, shortest floats, length-first
map key order, definite lengths. Then one value has exactly one accepted byte string. Nitro's
documents are read with ``canonical=False``: real NSMs write non-shortest forms (the timestamp
is always ``1b`` + 8 bytes) and indefinite maps, and those valid documents must verify.

Two readers, one meaning. The pure-Python reader (``_Reader``) is the definition. Canonical
input without tags is first tried on a fast path, which is on the live path once per batch:
cbor2's C decoder, then a walk of the result (types, integer range, depth, key order, and a
size budget that bounds the re-encoding), then the value re-encoded and compared with the input
byte for byte, which refuses trailing bytes, non-shortest forms and indefinite lengths at once.
The fast path only ever accepts what the pure reader accepts, with the same value (a
differential property test holds it to that); on any doubt the pure reader decides and names
the offset. cbor2's semantic tags (fractions, regexes, shared values...) are switched off there
before they run.

Errors are :class:`CborError`, one line naming what is wrong and its byte offset; every format
turns them into its own documented error. The writer (:func:`encode`) writes definite lengths
and minimal integers unless a field asks for the 8-byte form (:class:`Uint64`);
:func:`encode_canonical` also sorts map keys, for the formats zcbench reads back canonically.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain, pairwise
from typing import Any, Final

import cbor2

from zcbench.errors import DataError

__all__ = [
    "MAX_INPUT",
    "CborError",
    "Tagged",
    "Uint64",
    "decode",
    "describe",
    "encode",
    "encode_canonical",
    "encode_map_items",
]

MAX_INPUT: Final = 64 * 1024 * 1024
"""Default bound on one input: the largest frame or record zcbench accepts."""
_INT_MIN: Final = -(2**64)
_INT_MAX: Final = 2**64 - 1


class CborError(DataError, ValueError):
    """The bytes are not one well-formed CBOR item of the accepted subset.

    ``offset`` is the byte offset of the offending item (None when the whole input is at
    fault, e.g. too large). A :class:`ValueError` too, as the Nitro codec's errors always were.
    """

    def __init__(self, reason: str, offset: int | None = None) -> None:
        super().__init__(reason if offset is None else f"{reason} at offset {offset}")
        self.reason = reason
        self.offset = offset


def _past_the_end(major: int, declared: int, left: int) -> str:
    """Why a string's declared length cannot be read, in sizes a person reads: text that is no
    CBOR at all (JSON, say) declares lengths of exabytes."""
    size = float(declared)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if size < 1024 or unit == "EiB":
            break
        size /= 1024
    shown = f"{declared} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
    kind = "byte" if major == 2 else "text"
    return f"truncated: a {kind} string of {shown}, with {left} bytes left"


@dataclass(frozen=True)
class Tagged:
    """A tagged item: ``tag(value)``."""

    tag: int
    value: object


@dataclass(frozen=True)
class Uint64:
    """An unsigned integer the encoder writes in the 9-byte form (``1b`` + 8 bytes)."""

    value: int


def describe(value: object) -> str:
    """``value`` for an error message: short, in CBOR's diagnostic notation, never a repr."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, bytes):
        shown = value[:16].hex()
        return f"h'{shown}'" + ("..." if len(value) > 16 else "") + f" ({len(value)} bytes)"
    if isinstance(value, str):
        shown = value[:32].encode("unicode_escape").decode("ascii").replace('"', '\\"')
        return f'"{shown}"' + ("..." if len(value) > 32 else "")
    if isinstance(value, list | tuple):
        return f"an array of {len(value)} items"
    if isinstance(value, dict):
        return f"a map of {len(value)} pairs"
    if isinstance(value, Tagged):
        return f"tag {value.tag}"
    return "an item of an unsupported kind"


def _kind(value: object) -> str:
    """The CBOR kind of a decoded value, for messages."""
    if value is None or isinstance(value, bool):
        return describe(value)
    names = {int: "integer", float: "float", bytes: "byte string", str: "text string",
             list: "array", dict: "map", Tagged: "tag"}  # fmt: skip
    return names.get(type(value), "unsupported item")


# --- the reader: the definition -------------------------------------------------------------

_BREAK: Final = object()
_ARG_BYTES: Final = {24: 1, 25: 2, 26: 4, 27: 8}
_SHORTEST_FLOOR: Final = {24: 24, 25: 0x100, 26: 0x10000, 27: 0x100000000}
_FLOAT_FORMATS: Final = {25: ">e", 26: ">f", 27: ">d"}
_CANONICAL_NAN: Final = b"\xf9\x7e\x00"
_CONTAINER: Final = {4: "array", 5: "map"}


class _Reader:
    __slots__ = ("canonical", "data", "floats", "indefinite", "max_depth", "pos", "tags")

    def __init__(
        self,
        data: bytes,
        *,
        canonical: bool,
        indefinite: bool,
        tags: bool,
        floats: bool,
        max_depth: int,
    ) -> None:
        self.data = data
        self.pos = 0
        self.canonical = canonical
        self.indefinite = indefinite
        self.tags = tags
        self.floats = floats
        self.max_depth = max_depth

    def item(self, depth: int) -> object:
        if depth > self.max_depth:
            raise CborError(f"nesting deeper than {self.max_depth}", self.pos)
        # The head is read inline: this is the reader's hot path (a Nitro document's payload).
        data = self.data
        start = pos = self.pos
        if pos >= len(data):
            raise CborError("truncated", pos)
        initial = data[pos]
        pos += 1
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            return self._simple(initial, info, start)
        if info == 31:
            self.pos = pos
            return self._indefinite(major, depth, start)
        if info < 24:
            arg = info
        else:
            size = _ARG_BYTES.get(info)
            if size is None:
                raise CborError(f"reserved additional information {info}", start)
            if pos + size > len(data):
                raise CborError(f"truncated: need {size} bytes", pos)
            arg = int.from_bytes(data[pos : pos + size], "big")
            pos += size
            if self.canonical and arg < _SHORTEST_FLOOR[info]:
                raise CborError(f"integer or length {arg} not in its shortest form", start)
        if major == 2 or major == 3:
            end = pos + arg
            if end > len(data):
                raise CborError(_past_the_end(major, arg, len(data) - pos), pos)
            raw = data[pos:end]
            self.pos = end
            if major == 2:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise CborError("text string is not UTF-8", start) from None
        self.pos = pos
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major == 4:
            # Every item takes at least one byte: a declared count larger than what is left lies.
            if arg > len(data) - pos:
                raise CborError(f"array of {arg} items exceeds the input", start)
            out = []
            for _ in range(arg):
                value = self.item(depth + 1)
                if value is _BREAK:
                    raise CborError("unexpected break inside array", start)
                out.append(value)
            return out
        if major == 5:
            if 2 * arg > len(data) - pos:
                raise CborError(f"map of {arg} pairs exceeds the input", start)
            return self._map(depth, arg, start)
        # major == 6
        if not self.tags:
            raise CborError(f"tag {arg} not allowed here", start)
        value = self.item(depth + 1)
        if value is _BREAK:
            raise CborError("tag without content", start)
        return Tagged(arg, value)

    def _simple(self, initial: int, info: int, start: int) -> object:
        data = self.data
        self.pos = start + 1
        if info == 20:
            return False
        if info == 21:
            return True
        if info == 22:
            return None
        if info == 31:
            return _BREAK
        fmt = _FLOAT_FORMATS.get(info)
        if fmt is None or not self.floats:
            raise CborError(f"unsupported simple value or float (0x{initial:02x})", start)
        size = struct.calcsize(fmt)
        end = start + 1 + size
        if end > len(data):
            raise CborError(f"truncated: need {size} bytes", start + 1)
        (value,) = struct.unpack(fmt, data[start + 1 : end])
        self.pos = end
        if self.canonical and data[start:end] != _shortest_float(value):
            raise CborError(f"float {value} not in its shortest form", start)
        return float(value)

    def _indefinite(self, major: int, depth: int, start: int) -> object:
        if major in (2, 3):
            raise CborError("indefinite-length string", start)
        if major not in _CONTAINER:
            raise CborError(f"indefinite length not allowed for major type {major}", start)
        if not self.indefinite:
            raise CborError(f"indefinite-length {_CONTAINER[major]} not allowed here", start)
        if major == 5:
            return self._map(depth, None, start)
        items: list[object] = []
        while True:
            value = self.item(depth + 1)
            if value is _BREAK:
                return items
            items.append(value)

    def _map(self, depth: int, count: int | None, start: int) -> dict[object, object]:
        out: dict[object, object] = {}
        data = self.data
        previous = b""
        n = 0
        while count is None or n < count:
            key_start = self.pos
            key = self.item(depth + 1)
            if key is _BREAK:
                if count is None:
                    return out
                raise CborError("unexpected break inside map", start)
            if not isinstance(key, int | str | bytes) or isinstance(key, bool):
                raise CborError(f"map key of type {_kind(key)} in map", key_start)
            if self.canonical:
                # Length-first order of the keys' encodings; an equal encoding is a duplicate.
                encoded = data[key_start : self.pos]
                if len(encoded) == len(previous) and encoded == previous:
                    raise CborError(f"duplicate map key {describe(key)}", key_start)
                if (len(encoded), encoded) < (len(previous), previous):
                    raise CborError(f"map key {describe(key)} out of canonical order", key_start)
                previous = encoded
            value = self.item(depth + 1)
            if value is _BREAK:
                raise CborError("map ends between a key and its value", start)
            if key in out:
                raise CborError(f"duplicate map key {describe(key)}", key_start)
            out[key] = value
            n += 1
        return out


def _shortest_float(value: float) -> bytes:
    """The canonical encoding of ``value``: the narrowest IEEE 754 form that holds it exactly."""
    if math.isnan(value):
        return _CANONICAL_NAN
    for info, fmt in ((25, ">e"), (26, ">f")):
        try:
            packed = struct.pack(fmt, value)
        except OverflowError:
            continue
        if math.isinf(value) or struct.unpack(fmt, packed)[0] == value:
            return bytes([0xE0 | info]) + packed
    return b"\xfb" + struct.pack(">d", value)


# --- the fast path for canonical input -------------------------------------------------------


class _Doubt(Exception):
    """The fast path cannot vouch for the input; the reader decides."""


def _refuse_tag(*_args: object) -> object:
    raise _Doubt


class _NoSemanticTags(dict[int, Any]):
    """Makes cbor2 hand every tag to :func:`_refuse_tag` before decoding its content."""

    def __missing__(self, _tag: int) -> object:
        return _refuse_tag

    def __contains__(self, _tag: object) -> bool:
        return True

    def get(self, _tag: int, _default: object = None) -> object:
        return _refuse_tag


_NO_TAGS: Final = _NoSemanticTags()


def _ascii_keys_cost(mapping: dict[object, object]) -> int | None:
    """The keys' least cost when all are ASCII text in length-first order, None when a key is
    not ASCII text; raises :class:`_Doubt` when they are out of order."""
    prev_len, prev, cost = -1, "", 0
    for key in mapping:
        if type(key) is not str or not key.isascii():
            return None
        n = len(key)  # an ASCII key's encoding grows with its length, then sorts bytewise
        if n < prev_len or (n == prev_len and key <= prev):
            raise _Doubt
        prev_len, prev = n, key
        cost += n + 1
    return cost


def _keys_ordered(mapping: dict[object, object]) -> bool:
    """Whether the keys are integers, text or byte strings in length-first encoded order."""
    previous: tuple[int, bytes] = (-1, b"")
    for key in mapping:
        if type(key) not in (int, str, bytes):  # bool, None, tuple, frozendict, float: no
            return False
        encoded = cbor2.dumps(key)
        if (len(encoded), encoded) <= previous:
            return False
        previous = (len(encoded), encoded)
    return True


def _cost(value: list[object] | dict[object, object], depth: int, max_depth: int,
          floats: bool) -> int:
    """The fewest input bytes the plain tree ``value`` (an array or map at ``depth``) needs.

    Raises :class:`_Doubt` unless the tree is one the reader could have produced: only its
    kinds of items, integers of 64 bits, keys in canonical order, nesting within ``max_depth``.
    Each item of a canonical encoding takes at least one byte and a string at least its length,
    so a cost above the input's size means shared values or string references; checking it
    also keeps the re-encoding linear. (This runs once per live batch: hence the ASCII keys'
    shortcut and the inlined loop.)
    """
    if value and depth >= max_depth:
        raise _Doubt
    if type(value) is not dict:
        return 1 + _items_cost(value, depth, max_depth, floats)
    keys = _ascii_keys_cost(value)
    if keys is not None:
        return 1 + keys + _items_cost(value.values(), depth, max_depth, floats)
    if not _keys_ordered(value):
        raise _Doubt
    return 1 + _items_cost(chain.from_iterable(value.items()), depth, max_depth, floats)


def _items_cost(items: Iterable[object], depth: int, max_depth: int, floats: bool) -> int:
    cost = 0
    for item in items:
        kind = type(item)
        if kind is bytes or kind is str:
            cost += len(item) + 1  # type: ignore[arg-type]
        elif kind is int:
            if not _INT_MIN <= item <= _INT_MAX:  # type: ignore[operator]
                raise _Doubt
            cost += 1
        elif kind is list or kind is dict:
            cost += _cost(item, depth + 1, max_depth, floats)  # type: ignore[arg-type]
        elif item is None or kind is bool or (kind is float and floats):
            cost += 1
        else:
            raise _Doubt
    return cost


def _fast(data: bytes, max_depth: int, floats: bool) -> object:
    """The value of canonical ``data``, or raises :class:`_Doubt`."""
    try:
        value = cbor2.loads(
            data,
            max_depth=max_depth,  # cbor2 counts depth as the reader does: the top item is 0
            allow_indefinite=False,
            allow_duplicate_keys=False,
            semantic_decoders=_NO_TAGS,
            tag_hook=_refuse_tag,
        )
    except Exception:  # cbor2 raises several types; all mean "let the reader say why"
        raise _Doubt from None
    # Wrapped in a list one level up, so a lone scalar is checked like any other item.
    if _cost([value], -1, max_depth, floats) - 1 > len(data):
        raise _Doubt
    # Keys were checked in order above, so the insertion-order encoding is the canonical one,
    # except for floats, which cbor2 narrows only when asked for canonical form.
    if cbor2.dumps(value, canonical=floats) != data:
        raise _Doubt
    return value


def decode(
    data: bytes,
    *,
    canonical: bool,
    indefinite: bool = False,
    tags: bool = False,
    floats: bool = False,
    max_depth: int = 16,
    max_bytes: int = MAX_INPUT,
) -> object:
    """Decode exactly one CBOR item of ``data`` under a format's options; raise :class:`CborError`.

    ``canonical``: the format is deterministic (shortest forms, length-first key order, definite
    lengths). ``indefinite``: indefinite-length arrays and maps are allowed (not with
    ``canonical``). ``tags``: tags are returned as :class:`Tagged` instead of refused.
    ``floats``: floating-point values are allowed. ``max_depth``: the deepest item's nesting
    (0: a lone scalar). ``max_bytes``: the largest input.
    """
    if canonical and indefinite:
        raise ValueError("a canonical format has no indefinite lengths")
    if not isinstance(data, bytes):
        if not isinstance(data, bytearray | memoryview):
            raise CborError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
    if len(data) > max_bytes:
        raise CborError(f"input of {len(data)} bytes exceeds the limit of {max_bytes}")
    if canonical and not tags:
        try:
            return _fast(data, max_depth, floats)
        except (_Doubt, RecursionError):
            pass
    reader = _Reader(
        data,
        canonical=canonical,
        indefinite=indefinite,
        tags=tags,
        floats=floats,
        max_depth=max_depth,
    )
    value = reader.item(0)
    if value is _BREAK:
        raise CborError("stray break", 0)
    if reader.pos != len(data):
        raise CborError(f"{len(data) - reader.pos} trailing bytes after the item", reader.pos)
    return value


# --- the writer ------------------------------------------------------------------------------


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
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return _head(2, len(raw)) + raw
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _head(3, len(raw)) + raw
    if isinstance(value, list | tuple):
        return _head(4, len(value)) + b"".join(encode(v) for v in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + encode_map_items(value.items())
    if isinstance(value, Tagged):
        return _head(6, value.tag) + encode(value.value)
    raise CborError(f"cannot encode {type(value).__name__}")


def encode_map_items(items: Iterable[tuple[object, object]]) -> bytes:
    """The concatenated key/value encodings of ``items`` (an iterable of pairs), no header."""
    out = bytearray()
    for key, value in items:
        out += encode(key)
        out += encode(value)
    return bytes(out)


_PLAIN_SCALARS: Final = (str, bytes, bool, type(None))


def _plain(value: object, depth: int = 0) -> bool:
    """Whether ``value`` is plain data cbor2 writes exactly as :func:`encode_canonical` would:
    text, bytes, booleans, None, 64-bit integers, floats, lists, tuples, and dicts whose keys
    are not floats (two NaN keys would collide), nested at most 64 deep. Anything else
    (bignums, bytearrays, :class:`Tagged`, :class:`Uint64`, the many types cbor2 would tag
    on its own) is not."""
    kind = type(value)
    if kind in _PLAIN_SCALARS or kind is float:
        return True
    if kind is int:
        return _INT_MIN <= value <= _INT_MAX  # type: ignore[operator]
    if depth >= 64:
        return False
    if kind is list or kind is tuple:
        return all(_plain(v, depth + 1) for v in value)  # type: ignore[attr-defined]
    if kind is dict:
        return all(type(k) is not float and _plain(k, depth + 1) and _plain(v, depth + 1)
                   for k, v in value.items())  # type: ignore[attr-defined]
    return False


def encode_canonical(value: object, *, ordered: bool = False) -> bytes:
    """Encode ``value`` in RFC 8949 §4.2.3 canonical form: what :func:`decode` accepts with
    ``canonical=True``, and the bytes cbor2 writes with ``canonical=True`` for the same value.
    The one canonical writer of every format zcbench writes (records, frames, batches,
    signals, entries, slices, sealed payloads, ``user_data``).

    ``ordered=True`` is for a writer that builds its values in canonical form already (the
    market-data wire and the log's records, written for every batch of a live run): every
    map's keys inserted in canonical order, no floats, only text, bytes, None, 64-bit
    integers, lists and maps. Such a value is written as built, without the sort and the
    check, the same bytes at a third of the cost (the wire's and the records' tests hold their
    encodings to the sorted one); a value that is not so gives bytes
    every canonical reader refuses, never other bytes that pass.

    Shortest heads and definite lengths as :func:`encode`; floats in the narrowest IEEE 754
    form that holds them exactly (NaN as ``f97e00``); every map's entries sorted by their
    encoded keys, shorter first, then bytewise. :class:`Uint64` (a non-shortest head by
    design) and anything but plain data are refused. Plain data is written by cbor2's C
    encoder (the same bytes, tested; the live path writes several items a batch).
    """
    if ordered:
        written: bytes = cbor2.dumps(value)
        return written
    if _plain(value):
        data: bytes = cbor2.dumps(value, canonical=True)
        return data
    return _encode_canonical(value)


def _encode_canonical(value: object) -> bytes:
    if isinstance(value, float):
        return _shortest_float(value)
    if isinstance(value, dict):
        entries = sorted(
            ((_encode_canonical(k), _encode_canonical(v)) for k, v in value.items()),
            key=lambda entry: (len(entry[0]), entry[0]),
        )
        for (key, _), (following, _) in pairwise(entries):
            if key == following:
                raise CborError("duplicate map key")
        return _head(5, len(entries)) + b"".join(k + v for k, v in entries)
    if isinstance(value, list | tuple):
        return _head(4, len(value)) + b"".join(_encode_canonical(v) for v in value)
    if isinstance(value, Tagged):
        return _head(6, value.tag) + _encode_canonical(value.value)
    if isinstance(value, Uint64):
        raise CborError("a fixed-width integer is not canonical")
    return encode(value)
