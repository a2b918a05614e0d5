"""zcbench's one strict CBOR reader (zcbench/_cbor.py): refusals with offsets, bounds, and the
fast path for canonical input held to the pure reader by a differential property test."""

from __future__ import annotations

import math
import struct

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench import _cbor
from zcbench._cbor import CborError, decode, describe
from zcbench.errors import DataError


def _canonical(data: bytes, **options: object) -> object:
    return decode(data, canonical=True, **options)  # type: ignore[arg-type]


# --- refusals, each naming what and where -------------------------------------------------


@pytest.mark.parametrize(
    ("data", "why", "offset"),
    [
        (b"\x18\x05", "shortest", 0),  # 5 in the 1-byte-argument form
        (b"\x19\x00\x05", "shortest", 0),
        (b"\x1a\x00\x00\x01\x00", "shortest", 0),
        (b"\x1b\x00\x00\x00\x00\x00\x01\x00\x00", "shortest", 0),
        (b"\x38\x00", "shortest", 0),  # -1 in the long form
        (b"\x82\x01\x58\x01\x00", "shortest", 2),  # a byte string's length, non-shortest
        (b"\x82\x01\x78\x01a", "shortest", 2),  # a text string's length
        (b"\x98\x01\x00", "shortest", 0),  # an array's count
        (b"\xb8\x01\x61a\x00", "shortest", 0),  # a map's count
        (b"\xa2\x61b\x00\x61a\x00", "canonical order", 4),
        (b"\xa2\x62aa\x00\x61b\x00", "canonical order", 5),  # length first: "b" before "aa"
        (b"\xa2\x61a\x00\x61a\x01", "duplicate", 4),
        (b"\x9f\x01\xff", "indefinite-length array", 0),
        (b"\xbf\x61a\x01\xff", "indefinite-length map", 0),
        (b"\x5f\x41\x00\xff", "indefinite-length string", 0),
        (b"\x01\x00", "trailing", 1),
        (b"\xa1\x61a\x01junk", "4 trailing bytes", 4),
        (b"\xc2\x41\x01", "tag 2", 0),  # a bignum: integers are 64 bits
        (b"\x81\xd8\x1e\x82\x01\x02", "tag 30", 1),  # a rational
        (b"\xf7", "simple", 0),
        (b"\xf0", "simple", 0),
        (b"\xfb\x3f\xf8\x00\x00\x00\x00\x00\x00", "float", 0),  # floats not allowed here
        (b"\x82\x01\x41", "truncated", 3),
        (b"\x62a", "truncated", 1),
        (b"\x62\xc3\x28", "UTF-8", 0),
        (b"\xa1\xf5\x00", "map key of type true", 1),
        (b"\xff", "stray break", 0),
    ],
)
def test_canonical_refusals_name_what_and_where(data: bytes, why: str, offset: int) -> None:
    with pytest.raises(CborError, match=why) as exc:
        _canonical(data)
    assert exc.value.offset == offset
    assert f"at offset {offset}" in str(exc.value)
    assert isinstance(exc.value, DataError)  # a documented branch of the error tree
    assert "\n" not in str(exc.value)
    assert "b'" not in str(exc.value)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xfa\x3f\xc0\x00\x00", "shortest"),  # 1.5 fits a half
        (b"\xfb\x3f\xf8\x00\x00\x00\x00\x00\x00", "shortest"),
        (b"\xfb\x3f\xf1\x99\x99\xa0\x00\x00\x00", "shortest"),  # float32(1.1) widened
        (b"\xf9\x7e\x01", "shortest"),  # a NaN with a payload: NaN is f97e00
        (b"\xfa\x7f\xc0\x00\x00", "shortest"),
        (b"\xfa\x7f\x80\x00\x00", "shortest"),  # infinity is f97c00
    ],
)
def test_non_shortest_floats_are_refused_where_floats_are_allowed(data: bytes, why: str) -> None:
    with pytest.raises(CborError, match=why):
        _canonical(data, floats=True)
    decode(data, canonical=False, floats=True)  # a lenient format reads it


def test_shortest_floats_are_accepted() -> None:
    for value in (0.0, -0.0, 1.5, 1.1, 65504.0, 1e300, 5.960464477539063e-08, math.inf):
        assert _canonical(cbor2.dumps(value, canonical=True), floats=True) == value
    assert math.isnan(_canonical(b"\xf9\x7e\x00", floats=True))  # type: ignore[arg-type]


def test_lenient_reading_for_documents_keeps_every_other_rule() -> None:
    options = {"canonical": False, "indefinite": True, "tags": True}
    assert decode(b"\x18\x05", **options) == 5  # type: ignore[arg-type]
    assert decode(b"\xbf\x61b\x00\x61a\x01\xff", **options) == {"b": 0, "a": 1}  # type: ignore[arg-type]
    assert decode(b"\xd2\x80", **options) == _cbor.Tagged(18, [])  # type: ignore[arg-type]
    for data, why in ((b"\x01\x00", "trailing"), (b"\xa2\x01\x01\x01\x02", "duplicate"),
                      (b"\x5f\xff", "indefinite-length string")):
        with pytest.raises(CborError, match=why):
            decode(data, **options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="canonical"):
        decode(b"\x00", canonical=True, indefinite=True)


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_depth_bound(limit: int) -> None:
    inside = b"\x81" * limit + b"\x00"
    assert _canonical(inside, max_depth=limit) is not None
    for too_deep in (b"\x81" * (limit + 1) + b"\x00", b"\xa1\x61a" * (limit + 1) + b"\x00"):
        with pytest.raises(CborError, match=f"nesting deeper than {limit}"):
            _canonical(too_deep, max_depth=limit)
    # tens of thousands deep: the documented error, not a RecursionError
    with pytest.raises(CborError, match="nesting"):
        _canonical(b"\x81" * 50_000 + b"\x00", max_depth=limit)


def test_size_bound_and_declared_lengths() -> None:
    with pytest.raises(CborError, match="exceeds the limit of 4") as exc:
        _canonical(b"\x45hello", max_bytes=4)
    assert exc.value.offset is None
    for head in (b"\x5b", b"\x7b", b"\x9b", b"\xbb"):
        with pytest.raises(CborError, match=r"exceeds|truncated"):
            _canonical(head + b"\x00\x00\x00\x7f\xff\xff\xff\xff")


@pytest.mark.parametrize("tag", [*range(0, 40), 55799, 256, 258, 260, 261, 1000, 2**32])
def test_no_tag_reaches_cbor2s_semantic_decoders(tag: int) -> None:
    head = cbor2.dumps(cbor2.CBORTag(tag, 0))[:-1]
    for content in (b"\x00", b"\x41\x00", b"\x61a", b"\x82\x01\x02", b"\xa0", b"\xc1\x00"):
        with pytest.raises(CborError, match="tag"):
            _canonical(head + content)


def test_shared_values_cannot_amplify() -> None:
    # value sharing (tags 28/29) would let 40 bytes decode into 2**20 references
    data = b"\xd8\x1c\x82\x00\x00" + b"\x82\xd8\x1d\x00\xd8\x1d\x00" * 20
    with pytest.raises(CborError, match="tag"):
        _canonical(data)


def test_describe_is_diagnostic_notation() -> None:
    assert describe(b"\x00\xff") == "h'00ff' (2 bytes)"
    assert describe("a\"b\n") == '"a\\"b\\n"'
    assert describe(None) == "null"
    assert describe(True) == "true"
    assert describe([1, 2]) == "an array of 2 items"
    assert describe({1: 2}) == "a map of 1 pairs"
    assert describe(bytes(100)).endswith("... (100 bytes)")


# --- the fast path: only ever what the reader accepts, with the same value -----------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.binary(max_size=24)
    | st.text(max_size=12)
)
keys = st.text(max_size=6) | st.integers(-300, 300) | st.binary(max_size=3)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=16,
)


def _same(a: object, b: object) -> bool:
    """Equal values of equal CBOR kinds (1, 1.0 and true differ; NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        typed = {(type(k), k): v for k, v in b.items()}
        return len(a) == len(b) and all(
            (type(k), k) in typed and _same(v, typed[type(k), k]) for k, v in a.items()
        )
    return a == b


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=-1)
    if isinstance(value, dict):
        return 1 + max((max(_depth(k), _depth(v)) for k, v in value.items()), default=-1)
    return 0


def _has_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, list):
        return any(map(_has_float, value))
    if isinstance(value, dict):
        return any(_has_float(k) or _has_float(v) for k, v in value.items())
    return False


DOUBT = object()


def _reader(data: bytes, max_depth: int, floats: bool) -> object:
    reader = _cbor._Reader(
        data, canonical=True, indefinite=False, tags=False, floats=floats, max_depth=max_depth
    )
    value = reader.item(0)
    if value is _cbor._BREAK or reader.pos != len(data):
        raise CborError("not one item")
    return value


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    raw = bytearray(data)
    action = draw(st.sampled_from(["keep", "flip", "insert", "delete", "append", "widen"]))
    if action == "flip" and raw:
        raw[draw(st.integers(0, len(raw) - 1))] ^= 1 << draw(st.integers(0, 7))
    elif action == "insert":
        at = draw(st.integers(0, len(raw)))
        raw[at:at] = draw(st.binary(min_size=1, max_size=3))
    elif action == "delete" and raw:
        del raw[draw(st.integers(0, len(raw) - 1))]
    elif action == "append":
        raw += draw(st.binary(min_size=1, max_size=4))
    elif action == "widen" and raw and raw[0] >> 5 < 6 and raw[0] & 0x1F < 24:
        raw[:1] = bytes([raw[0] & 0xE0 | 24, raw[0] & 0x1F])  # the top head, non-shortest
    return bytes(raw)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None)
@given(values, st.integers(0, 5), st.booleans(), st.booleans(), st.data())
def test_fast_path_agrees_with_the_reader(
    value: object, max_depth: int, floats: bool, canonical_order: bool, data: st.DataObject
) -> None:
    encoded = cbor2.dumps(value, canonical=canonical_order)
    raw = _mutate(encoded, data.draw)
    try:
        expected: object = _reader(raw, max_depth, floats)
    except CborError:
        expected = CborError
    try:
        fast: object = _cbor._fast(raw, max_depth, floats)
    except _cbor._Doubt:
        fast = DOUBT
    if fast is not DOUBT:
        assert expected is not CborError, f"fast path accepted what the reader refuses: {raw.hex()}"
        assert _same(fast, expected), raw.hex()
    # decode() gives the reader's verdict, whichever path answered
    try:
        got: object = decode(raw, canonical=True, floats=floats, max_depth=max_depth)
    except CborError:
        got = CborError
    assert got is expected if expected is CborError else _same(got, expected)
    # and cbor2's canonical encoding of a value within the options is accepted, on the fast path
    plain = _depth(value) <= max_depth and (floats or not _has_float(value))
    if canonical_order and raw == encoded and plain:
        assert fast is not DOUBT, encoded.hex()
        assert _same(fast, value), encoded.hex()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 4), st.booleans())
def test_random_bytes_agree(raw: bytes, max_depth: int, floats: bool) -> None:
    try:
        expected: object = _reader(raw, max_depth, floats)
    except CborError:
        expected = CborError
    try:
        fast = _cbor._fast(raw, max_depth, floats)
    except _cbor._Doubt:
        return
    assert expected is not CborError, raw.hex()
    assert _same(fast, expected), raw.hex()


def test_shortest_float_rule_matches_cbor2() -> None:
    # the reader's rule and cbor2's canonical writer pick the same width for edge values
    edges = [0.0, -0.0, 1.0, 1.5, 65504.0, 65505.0, 65520.0, 6.1e-05, 5.96e-08, 2.0**-24,
             2.0**-25, 3.4028234663852886e38, 3.5e38, 1e-45, 2.0**-149, 2.0**-150, math.inf,
             -math.inf, math.nan, 1.1, 0.1]  # fmt: skip
    for value in edges:
        assert _cbor._shortest_float(value) == cbor2.dumps(value, canonical=True), value
    for bits in range(0, 0x10000, 97):
        (half,) = struct.unpack(">e", struct.pack(">H", bits))
        if not math.isnan(half):
            assert _cbor._shortest_float(half) == cbor2.dumps(half, canonical=True)


@pytest.mark.slow
def test_benchmark_quick_run_completes() -> None:
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "bench" / "bench_cbor.py"
    proc = subprocess.run([sys.executable, str(bench), "--quick"], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "decode_batch" in proc.stdout
    assert "strict CBOR layer alone" in proc.stdout


# --- the canonical writer ---------------------------------------------------------------------

_exact_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.binary(max_size=24)
    | st.text(max_size=12)
)
_exact_values = st.recursive(
    _exact_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=16,
)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(_exact_values | values)
def test_encode_canonical_writes_what_cbor2_canonical_writes_and_the_reader_reads(
    value: object,
) -> None:
    encoded = _cbor.encode_canonical(value)
    assert encoded == cbor2.dumps(value, canonical=True)
    # the writer's own encoder, behind its cbor2 fast path, gives the same bytes
    assert _cbor._encode_canonical(value) == encoded
    assert _same(_canonical(encoded, max_depth=64, floats=True), value)


def test_encode_canonical_refuses_what_has_no_canonical_form_here() -> None:
    import datetime as dt
    from decimal import Decimal

    for value in (_cbor.Uint64(3), {"a": [Decimal("1.5")]}, dt.date(2026, 1, 1), 2**64, {1, 2},
                  {"a": [-(2**64) - 1]}, {float("nan"): 1, float("nan"): 2}):
        with pytest.raises(CborError):
            _cbor.encode_canonical(value)


def test_ordered_writing_is_the_canonical_bytes_or_bytes_the_reader_refuses() -> None:
    built = {"n": 2, "v": 1, "seq": 7, "cols": {"ts": {"d": b"\x00" * 16, "t": "i64"}}}
    assert _cbor.encode_canonical(built, ordered=True) == _cbor.encode_canonical(built)
    # a writer that breaks its promise (a key out of place, a float) is caught by every reader
    for broken in ({"v": 1, "n": 2}, {"n": 1.5}):
        with pytest.raises(CborError):
            _canonical(_cbor.encode_canonical(broken, ordered=True), floats=True)


def test_cbor_is_written_only_by_the_one_writer() -> None:
    """No module but zcbench/_cbor.py imports cbor2: every format zcbench writes goes through
    ``encode_canonical`` (the market-data wire did not)."""
    import ast
    from pathlib import Path

    import zcbench

    root = Path(zcbench.__file__).parent
    users = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "_cbor.py" and path.parent == root:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "cbor2" or n.startswith("cbor2.") for n in names):
                users.append(str(path.relative_to(root)))
    assert users == []
