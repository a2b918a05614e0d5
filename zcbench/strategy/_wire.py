"""Wire codecs for batches and signals: deterministic CBOR, strict and bounded on decode.

Batches travel column-wise (DESIGN.md: a CBOR map of arrays, not a list of per-event maps).
An integer column is one byte string of little-endian int64 values; a string column is a
dictionary (the distinct values in first-seen order) and little-endian uint32 codes; a column
with nulls adds a validity bitmap (LSB first, 1 = present). Everything is encoded with CBOR's
canonical map ordering, so the same batch always gives the same bytes.

Decoding accepts exactly those bytes and no other encoding of the same batch or signals:
canonical CBOR through zcbench's one strict reader (one item, no trailing bytes, shortest
forms, bounded size and depth), a validity bitmap only for a column with a null, its padding
bits and null slots 0 (a null string row is the code of ""), a dictionary of exactly the values
used, in first-seen order.

The backtest sends its batches through these codecs too, so a strategy sees exactly the same
DataFrame (values and dtypes) in a backtest, in the enclave and in a replay.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from zcbench import _cbor
from zcbench._cbor import describe
from zcbench.errors import DataError
from zcbench.strategy._contract import Batch, Signal
from zcbench.strategy._schema import EVENT_SCHEMA, REQUIRED_FIELDS

__all__ = [
    "BATCH_VERSION",
    "MAX_BATCH_EVENTS",
    "WIRE_VERSION",
    "BatchColumns",
    "decode_batch",
    "decode_signals",
    "encode_batch",
    "encode_signals",
    "select_fields",
]

WIRE_VERSION: Final = 1
"""The signals' version (and the batches' first one)."""
BATCH_VERSION: Final = 2
"""A batch's version. Version 2 carries no sequence number: a batch's seq is the frame's that
delivers it (``ingest``) and the log record's that holds it, never its bytes', so the same
events are the same bytes whatever batch they are (a replay sends a logged batch as logged
under any seq). Version 1 bodies (``{"v": 1, "seq", "n", "cols"}``, logged before) are still
read, their seq held to the one given."""
MAX_BATCH_EVENTS: Final = 1_000_000
MAX_SIGNALS: Final = 100_000
_MAX_STR: Final = 256
MAX_WIRE_BYTES: Final = 64 * 1024 * 1024
"""Largest encoded batch or signals (they travel inside a frame or a log record, both bounded
by 64 MiB)."""
# The deepest item of each format: batch map > cols > column > dict list > string; signals map
# > list > signal > hints > pair > value.
_BATCH_DEPTH: Final = 4
_SIGNALS_DEPTH: Final = 5


def select_columns(frame: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """``frame``'s columns ``names`` (each present once), in that order, without a copy.

    polars' public selections cost 15 to 45 us a call whatever the frame's length (``frame[names]``
    parses its key into a Series first, ``select`` runs the lazy engine), and a live feed pays
    three a batch (the chunk's columns, the strategy's fields, the execution layer's prices): so
    the frame's own column selection is called, about 1 us, or ``select`` where polars no
    longer has it (a test holds the two equal)."""
    try:
        native = frame._df.select(list(names))
    except AttributeError:
        return frame.select(names)
    selected: pl.DataFrame = pl.DataFrame._from_pydf(native)
    return selected


def select_fields(events: pl.DataFrame, fields: Sequence[str]) -> pl.DataFrame:
    """``events`` reduced to ``fields`` and cast to the schema's types.

    Columns come in the canonical order, required fields first, then the rest sorted by name;
    :func:`decode_batch` produces the same order.

    This is where every field a strategy did not declare is stripped.
    """
    wanted = list(REQUIRED_FIELDS) + sorted(set(fields) - set(REQUIRED_FIELDS))
    names = events.columns
    missing = [f for f in wanted if f not in names]
    if missing:
        raise DataError(f"events lack fields {missing} (have {names})")
    # no select of cast expressions when the types are right already: building those cost ~1 ms
    # per call, paid by every chunk of a live feed; the schema's types have no parameters, so
    # a column's type is exactly right when it is an instance of that class
    types = dict(zip(names, events.dtypes, strict=True))
    if all(type(types[f]) is EVENT_SCHEMA[f] for f in wanted):
        return events if names == wanted else select_columns(events, wanted)
    return events.select([pl.col(f).cast(EVENT_SCHEMA[f]) for f in wanted])


def encode_batch(batch: Batch) -> bytes:
    """The deterministic column-wise CBOR encoding of ``batch``'s events (version 2: its seq is
    not in the bytes; it travels in the frame and the log record)."""
    events = batch.events
    cols: dict[str, Any] = {}
    for name in events.columns:
        if name not in EVENT_SCHEMA:
            raise DataError(f"column {name!r} is not in the event schema")
        series = events.get_column(name)
        if series.dtype != EVENT_SCHEMA[name]:
            series = series.cast(EVENT_SCHEMA[name])
        cols[name] = _encode_column(series)
    # Canonical CBOR orders map keys by encoded length, then bytewise (RFC 8949 section 4.2.3).
    # Every map here is built in that order, so the canonical writer takes it as built
    # (``ordered``), at a third of the cost of sorting (the pinned encodings in the tests hold
    # this; a new key must go in its canonical place).
    doc = {"n": events.height, "v": BATCH_VERSION, "cols": _canonical_keys(cols)}
    return _cbor.encode_canonical(doc, ordered=True)


def _canonical_keys(mapping: dict[str, Any]) -> dict[str, Any]:
    """``mapping`` in canonical key order (a text key's CBOR head grows with its length)."""
    return dict(sorted(mapping.items(), key=lambda item: (len(item[0].encode()), item[0].encode())))


# Encoding works on the column's Arrow buffers: one to_arrow() per column is a few microseconds
# and zero-copy, where each polars expression (fill_null, is_not_null, unique...) costs ~0.1 ms
# whatever the length and to_list() walks Python objects. The Arrow view of a sliced frame has
# an offset into shared buffers and unspecified values in null slots, so every buffer is read
# from the offset for exactly ``len`` elements and re-packed into the canonical form.


_SMALL: Final = 256
"""Rows up to which a string column is encoded from its Python strings."""


def _encode_column(series: pl.Series) -> dict[str, Any]:
    if series.dtype == pl.Int64 and series.null_count() == 0:
        # the common case, without the Arrow view: polars hands out the values zero-copy
        return {"d": series.to_numpy().astype("<i8", copy=False).tobytes(), "t": "i64"}
    if series.dtype == pl.String and series.null_count() == 0 and len(series) <= _SMALL:
        # a short string column (a live batch's symbols): a dict over the Python strings costs
        # a third of the Arrow view and its hash encoding
        index: dict[str, int] = {}
        rows = [index.setdefault(v, len(index)) for v in series.to_list()]
        return {"t": "str", "dict": list(index), "codes": np.array(rows, dtype="<u4").tobytes()}
    arr = series.to_arrow()
    if isinstance(arr, pa.ChunkedArray):  # polars rechunks today; do not depend on it
        arr = arr.combine_chunks()
    valid = _validity(arr)
    col: dict[str, Any]
    if series.dtype == pl.String:
        codes, uniques = _dictionary(arr)
        col = {"t": "str", "dict": uniques, "codes": codes.astype("<u4").tobytes()}
    else:
        values = _int_values(arr)
        if valid is not None:
            values = np.where(valid, values, 0)  # null slots may hold anything: send 0
        col = {"d": values.astype("<i8", copy=False).tobytes(), "t": "i64"}
    if valid is not None:  # "valid" sorts last in both kinds of column
        col["valid"] = np.packbits(valid, bitorder="little").tobytes()  # padding bits are 0
    return col


def _validity(arr: pa.Array) -> np.ndarray[Any, Any] | None:
    """One bool per row (True = present), or None when the column has no nulls."""
    if arr.null_count == 0:
        return None
    bitmap = np.frombuffer(arr.buffers()[0], dtype=np.uint8)
    bits = np.unpackbits(bitmap, bitorder="little")[arr.offset : arr.offset + len(arr)]
    return bits.view(bool)


def _int_values(arr: pa.Array) -> np.ndarray[Any, Any]:
    """The column's int64 values (null slots unspecified), read from the array's offset."""
    if len(arr) == 0:
        return np.empty(0, dtype=np.int64)  # an empty array may have no data buffer
    data = arr.buffers()[1]
    return np.frombuffer(data, dtype=np.int64, count=len(arr), offset=arr.offset * 8)


def _dictionary(arr: pa.Array) -> tuple[np.ndarray[Any, Any], list[str]]:
    """Distinct values in first-seen order (null as "") and each row's index into them.

    Arrow's hash dictionary encoding numbers values in order of first occurrence, which is the
    wire's dictionary order (a test checks it against a plain Python reference).
    """
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    encoded = arr.dictionary_encode()
    uniques: list[str] = encoded.dictionary.to_pylist()
    return _int32_values(encoded.indices), uniques


def _int32_values(indices: pa.Array) -> np.ndarray[Any, Any]:
    """An int32 array without nulls as numpy, read from its buffer (pyarrow's ``to_numpy()``
    imports pandas, a quarter of a second the first time, paid by a run's first batch)."""
    return np.frombuffer(
        indices.buffers()[1], dtype="<i4", count=len(indices), offset=indices.offset * 4
    )


class BatchColumns:
    """A frame's columns made ready once for :func:`encode_batch` of many of its row ranges.

    ``BatchColumns(frame).encode(start, end)`` gives exactly
    ``encode_batch(Batch(seq, frame.slice(start, end - start)))`` (tests hold the two equal),
    at a fraction of the cost: the frame's columns are read out once (int64 values with nulls
    as 0, a validity mask, strings as codes into the whole column's dictionary), so a batch is
    a few numpy slices, and its dictionary in first-seen order is worked out from the codes
    rather than from the strings. For a recording replayed batch after batch, this takes the
    batch encoding off the live run's per-batch path.
    """

    def __init__(self, frame: pl.DataFrame) -> None:
        self.height = frame.height
        self._cols: list[
            tuple[str, bool, np.ndarray[Any, Any], np.ndarray[Any, Any] | None, list[str]]
        ] = []
        names = list(frame.columns)
        for name in names:
            if name not in EVENT_SCHEMA:
                raise DataError(f"column {name!r} is not in the event schema")
        for name in sorted(names, key=lambda n: (len(n.encode()), n.encode())):
            series = frame.get_column(name)
            if series.dtype != EVENT_SCHEMA[name]:
                series = series.cast(EVENT_SCHEMA[name])
            valid = series.is_not_null().to_numpy() if series.null_count() else None
            if series.dtype == pl.String:
                arr = series.fill_null("").to_arrow()
                if isinstance(arr, pa.ChunkedArray):
                    arr = arr.combine_chunks()
                encoded = arr.dictionary_encode()
                codes = _int32_values(encoded.indices).astype(np.int64)
                self._cols.append((name, True, codes, valid, encoded.dictionary.to_pylist()))
            else:
                values = series.fill_null(0).to_numpy().astype("<i8", copy=False)
                self._cols.append((name, False, values, valid, []))

    def encode(self, start: int, end: int) -> bytes:
        """The wire encoding of rows ``start:end`` (as any batch: the seq is not in it)."""
        if not 0 <= start <= end <= self.height:
            raise DataError(f"rows {start}:{end} outside the frame's {self.height}")
        cols: dict[str, Any] = {}
        for name, is_str, data, valid_all, words in self._cols:
            part = data[start:end]
            col: dict[str, Any]
            if is_str:
                local, uniques = _first_seen_codes(part, len(words))
                col = {
                    "t": "str",
                    "dict": [words[u] for u in uniques],
                    "codes": local.astype("<u4").tobytes(),
                }
            else:
                col = {"d": part.tobytes(), "t": "i64"}
            if valid_all is not None:
                valid = valid_all[start:end]
                if not valid.all():
                    col["valid"] = np.packbits(valid, bitorder="little").tobytes()
            cols[name] = col
        doc = {"n": end - start, "v": BATCH_VERSION, "cols": cols}
        return _cbor.encode_canonical(doc, ordered=True)  # built in canonical order, as above


def _first_seen_codes(
    codes: np.ndarray[Any, Any], size: int
) -> tuple[np.ndarray[Any, Any], list[int]]:
    """``codes`` (each < ``size``) renumbered in order of first occurrence, and the original
    code of each new one."""
    order = list(dict.fromkeys(codes.tolist()))  # first occurrences, in order
    table = np.empty(size, dtype=np.int64)
    table[order] = np.arange(len(order))
    return table[codes], order


def decode_batch(data: bytes, *, seq: int, max_events: int = MAX_BATCH_EVENTS) -> Batch:
    """Decode batch ``seq`` (the seq of the frame or the log record that carries ``data``);
    raises :class:`DataError` naming the problem on any malformed input, and for a version-1
    body (which carries a seq of its own) whose seq is not ``seq``."""
    if type(seq) is not int or seq < 0:
        raise DataError(f"batch: seq must be a non-negative int, got {describe(seq)}")
    doc = _loads(data, "batch", _BATCH_DEPTH)
    if not isinstance(doc, dict) or set(doc) - {"seq"} != {"v", "n", "cols"}:
        raise DataError("batch: expected a map with keys v, n, cols")
    version = _version(doc)
    if (version, "seq" in doc) not in ((BATCH_VERSION, False), (1, True)):
        raise DataError(
            f"batch: wire version {describe(doc['v'])} with keys {', '.join(sorted(doc))}; "
            f"this build reads version {BATCH_VERSION} (v, n, cols) and 1 (v, seq, n, cols)"
        )
    if version == 1 and (type(doc["seq"]) is not int or doc["seq"] != seq):
        raise DataError(f"batch: its bytes say seq {describe(doc['seq'])}, it was given as {seq}")
    n, cols = doc["n"], doc["cols"]
    if type(n) is not int or not 0 <= n <= max_events:
        raise DataError(f"batch {seq}: event count {describe(n)} outside 0..{max_events}")
    if not isinstance(cols, dict) or not all(isinstance(k, str) for k in cols):
        raise DataError(f"batch {seq}: cols must be a map of field name to column")
    missing = [f for f in REQUIRED_FIELDS if f not in cols]
    if missing:
        raise DataError(f"batch {seq}: required fields {missing} absent")
    arrays = {name: _decode_column(seq, name, col, n) for name, col in cols.items()}
    order = list(REQUIRED_FIELDS) + sorted(c for c in cols if c not in REQUIRED_FIELDS)
    return Batch(seq=seq, events=_frame_of(order, arrays))


def _frame_of(order: list[str], arrays: dict[str, pa.Array]) -> pl.DataFrame:
    """The frame of ``arrays`` in ``order``: Arrow int64 and string_view become Int64 and String.

    ``pl.Series(name, array)`` and ``pl.DataFrame(series)`` are polars' own native constructors
    behind about 3 us a column and 5 us a frame of argument dispatch, paid by every batch: so
    the native ones are called, about 1.5 us for a batch of three columns, or the public ones
    where polars no longer has them (a test holds the two equal)."""
    try:
        native = _PyDataFrame([_PySeries.from_arrow(c, arrays[c]) for c in order])
    except (AttributeError, TypeError):
        return pl.DataFrame([pl.Series(c, arrays[c]) for c in order])
    frame: pl.DataFrame = pl.DataFrame._from_pydf(native)
    return frame


# polars' native column and frame types (see _frame_of), None where polars hides them
_PySeries: Any = getattr(pl.Series(), "_s", None).__class__
_PyDataFrame: Any = getattr(pl.DataFrame(), "_df", None).__class__


def batch_carries_seq(data: bytes) -> bool:
    """Whether ``data``, a batch :func:`decode_batch` accepts, is a version-1 body (which
    carries its seq): canonical CBOR makes its head a map of four keys, version 2's of three."""
    return data[:1] == b"\xa4"


def _decode_column(seq: int, name: str, col: object, n: int) -> pa.Array:
    where = f"batch {seq} column {name!r}"
    dtype = EVENT_SCHEMA.get(name)
    if dtype is None:
        raise DataError(f"{where}: not in the event schema")
    if not isinstance(col, dict):
        raise DataError(f"{where}: expected a map")
    kind = col.get("t")
    expected_kind = "str" if dtype is pl.String else "i64"
    if kind != expected_kind:
        raise DataError(f"{where}: type {describe(kind)}, schema says {expected_kind!r}")
    allowed = _STR_KEYS if kind == "str" else _I64_KEYS
    if not col.keys() <= allowed:
        raise DataError(f"{where}: unexpected keys {sorted(set(col) - allowed)}")
    # The wire's validity bitmap (LSB first, 1 = present) is Arrow's, so the wire's bytes become
    # the columns' buffers directly. It is held to what encode_batch writes, so one batch has
    # one encoding: present only with a null, padding bits 0, null slots 0 (or the "" code).
    # The checks are on row sets as Python integers (bit i: row i), a few big-integer
    # operations a column where numpy's unpacking, negation and masked selection were six
    # calls of about a microsecond each.
    valid: pa.Buffer | None = None
    nulls = 0
    if "valid" in col:
        bitmap = _bytes_of(col["valid"], (n + 7) // 8, where, "valid")
        present = int.from_bytes(bitmap, "little")
        if present >> n:
            raise DataError(f"{where}: valid has bits set past the {n} rows")
        nulls = present ^ ((1 << n) - 1)
        if not nulls:
            raise DataError(f"{where}: valid is sent only for a column with nulls")
        valid = pa.py_buffer(bitmap)
    if kind == "i64":
        data = _bytes_of(col.get("d"), n * 8, where, "d")
        if nulls and nulls & _rows(np.frombuffer(data, dtype="<i8") != 0):
            raise DataError(f"{where}: a null row's value must be sent as 0")
        # the wire's little-endian int64 is the buffer itself on a little-endian host
        values = pa.py_buffer(data if _LITTLE else np.frombuffer(data, "<i8").astype(np.int64))
        return pa.Array.from_buffers(pa.int64(), n, [valid, values])
    uniques = col.get("dict")
    if not isinstance(uniques, list) or not all(
        isinstance(u, str) and len(u) <= _MAX_STR for u in uniques
    ):
        raise DataError(f"{where}: dict must be a list of strings of at most {_MAX_STR}")
    if len(set(uniques)) != len(uniques):
        raise DataError(f"{where}: dict has duplicates")
    codes = np.frombuffer(_bytes_of(col.get("codes"), n * 4, where, "codes"), dtype="<u4")
    # every code is checked, null rows' too, so no out-of-range index is ever carried along
    running = np.maximum.accumulate(codes)  # the largest code so far, row by row
    if n and int(running[-1]) >= len(uniques):
        raise DataError(f"{where}: code {int(running[-1])} outside dict of {len(uniques)}")
    if not _first_seen(codes, running, len(uniques)):
        raise DataError(f"{where}: dict must hold exactly the values used, in first-seen order")
    if nulls and ("" not in uniques or nulls & _rows(codes != uniques.index(""))):
        raise DataError(f'{where}: a null row must be sent as the code of ""')
    return _string_view_column(uniques, codes, valid)


_STR_KEYS: Final = frozenset({"t", "dict", "codes", "valid"})
_I64_KEYS: Final = frozenset({"t", "d", "valid"})
_LITTLE: Final = sys.byteorder == "little"


def _rows(mask: np.ndarray[Any, Any]) -> int:
    """The rows where ``mask`` (one bool per row) is true, as an integer (bit i: row i)."""
    return int.from_bytes(np.packbits(mask, bitorder="little").tobytes(), "little")


def _first_seen(codes: np.ndarray[Any, Any], running: np.ndarray[Any, Any], size: int) -> bool:
    """Whether ``codes`` number ``size`` values in order of first occurrence (0, then at most
    one past the largest code so far, ``running``), each used: the dictionary encode_batch
    writes."""
    if not len(codes):
        return size == 0
    # codes were checked < size: + 1 cannot overflow
    return bool(codes[0] == 0 and running[-1] == size - 1 and (codes[1:] <= running[:-1] + 1).all())


def _string_view_column(
    uniques: list[str], codes: np.ndarray[Any, Any], valid: pa.Buffer | None
) -> pa.Array:
    """The rows ``uniques[codes]`` as an Arrow string-view array (nulls where ``valid`` is 0).

    String views are polars' own string layout, so polars takes them without converting, and a
    view is a fixed 16 bytes: the column is one numpy gather of the dictionary's views, where a
    take on an Arrow string array and polars' conversion from it cost ~3x as much. A view is the
    byte length (int32 LE), then either the bytes inline, zero-padded to 12, or for longer
    strings their first 4 bytes, a data buffer index (always 0 here) and an offset into it.
    """
    views: list[bytes] = []
    data = bytearray()
    for text in uniques:
        raw = text.encode()
        if len(raw) <= 12:
            views.append(struct.pack("<i12s", len(raw), raw))
        else:
            views.append(struct.pack("<i4sii", len(raw), raw[:4], 0, len(data)))
            data += raw
    rows = np.frombuffer(b"".join(views), dtype="V16")[codes]  # codes were checked < len
    buffers = [valid, pa.py_buffer(rows), pa.py_buffer(bytes(data))]
    return pa.Array.from_buffers(pa.string_view(), len(codes), buffers)


def _bytes_of(value: object, length: int, where: str, key: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != length:
        got = len(value) if isinstance(value, bytes) else type(value).__name__
        raise DataError(f"{where}: {key} must be {length} bytes, got {got}")
    return value


def _encode_signals(signals: Sequence[Signal]) -> bytes:
    # every map built in canonical key order (by encoded length, then bytewise: v, signals;
    # qty, side, hints, limit, symbol), so the canonical writer takes it as built (``ordered``,
    # a third of the sort's cost: the signals are encoded for every OUT record and hashed for
    # every order) when it holds only what that writer takes as built: a Signal holds text and
    # ints, and an int beyond CBOR's 64-bit heads goes to the sorting writer, which refuses it
    # (tests/strategy/test_wire.py holds the two to the same bytes)
    items = [
        {
            "qty": s.quantity,
            "side": s.side,
            "hints": [list(h) for h in s.hints],
            "limit": s.limit_price,
            "symbol": s.symbol,
        }
        for s in signals
    ]
    doc = {"v": WIRE_VERSION, "signals": items}
    return _cbor.encode_canonical(doc, ordered=all(map(_heads_hold, signals)))


def _heads_hold(s: Signal) -> bool:
    """Whether ``s`` holds only plain text (no str subclass) and ints that fit a CBOR integer
    head (at most 64 bits, either sign): what the canonical writer takes as built."""
    return (
        type(s.symbol) is str
        and type(s.side) is str
        and s.quantity <= _CBOR_INT_MAX
        and (s.limit_price is None or s.limit_price <= _CBOR_INT_MAX)
        and all(
            type(name) is str
            and (type(value) is str or -_CBOR_INT_MAX - 1 <= value <= _CBOR_INT_MAX)
            for name, value in s.hints
        )
    )


_CBOR_INT_MAX: Final = 2**64 - 1  # the largest argument of a CBOR head
_NO_SIGNALS: Final = _encode_signals([])


def encode_signals(signals: Sequence[Signal]) -> bytes:
    """The deterministic CBOR encoding of a batch's signals (the body of an OUT record)."""
    if not signals:  # most batches: the one encoding of an empty list, made once
        return _NO_SIGNALS
    return _encode_signals(signals)


def decode_signals(data: bytes) -> list[Signal]:
    """Decode signals; raises :class:`DataError` on any malformed input."""
    if data == _NO_SIGNALS:  # most batches: the one encoding of an empty list, known exactly
        return []
    doc = _loads(data, "signals", _SIGNALS_DEPTH)
    if not isinstance(doc, dict) or set(doc) != {"v", "signals"} or _version(doc) != WIRE_VERSION:
        raise DataError("signals: expected a map {v: 1, signals: [...]}")
    items = doc["signals"]
    if not isinstance(items, list) or len(items) > MAX_SIGNALS:
        raise DataError(f"signals: expected a list of at most {MAX_SIGNALS}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"symbol", "side", "qty", "limit", "hints"}:
            raise DataError(f"signal {i}: expected keys symbol, side, qty, limit, hints")
        hints = item["hints"]
        if not isinstance(hints, list) or not all(
            isinstance(h, list) and len(h) == 2 for h in hints
        ):
            raise DataError(f"signal {i}: hints must be a list of [name, value] pairs")
        try:
            out.append(
                Signal(
                    symbol=item["symbol"],
                    side=item["side"],
                    quantity=item["qty"],
                    limit_price=item["limit"],
                    hints=tuple((h[0], h[1]) for h in hints),
                )
            )
        except DataError as exc:
            raise DataError(f"signal {i}: {exc}") from None
    return out


def _version(doc: dict[Any, Any]) -> int | None:
    """The document's wire version; None unless an int (``true`` is not version 1)."""
    v = doc["v"]
    return v if type(v) is int else None


def _loads(data: bytes, what: str, max_depth: int) -> Any:
    """The one CBOR item of ``data``: canonical, as :func:`encode_batch` and
    :func:`encode_signals` write it, so one batch or list of signals has exactly one encoding."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DataError(f"{what}: expected bytes, got {type(data).__name__}")
    try:
        return _cbor.decode(data, canonical=True, max_depth=max_depth, max_bytes=MAX_WIRE_BYTES)
    except _cbor.CborError as exc:
        raise DataError(f"{what}: not canonical CBOR: {exc}") from None
