"""Wire codecs for batches and signals: deterministic CBOR, strict and bounded on decode.

Batches travel column-wise (DESIGN.md: a CBOR map of arrays, not a list of per-event maps).
An integer column is one byte string of little-endian int64 values; a string column is a
dictionary (the distinct values in first-seen order) and little-endian uint32 codes; a column
with nulls adds a validity bitmap (LSB first, 1 = present). Everything is encoded with CBOR's
canonical map ordering, so the same batch always gives the same bytes.

The backtest sends its batches through these codecs too, so a strategy sees exactly the same
DataFrame (values and dtypes) in a backtest, in the enclave and in a replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import cbor2
import numpy as np
import polars as pl

from zcbench.errors import DataError
from zcbench.strategy._contract import Batch, Signal
from zcbench.strategy._schema import EVENT_SCHEMA, REQUIRED_FIELDS

__all__ = [
    "MAX_BATCH_EVENTS",
    "WIRE_VERSION",
    "decode_batch",
    "decode_signals",
    "encode_batch",
    "encode_signals",
    "select_fields",
]

WIRE_VERSION: Final = 1
MAX_BATCH_EVENTS: Final = 1_000_000
MAX_SIGNALS: Final = 100_000
_MAX_STR: Final = 256


def select_fields(events: pl.DataFrame, fields: Sequence[str]) -> pl.DataFrame:
    """``events`` reduced to ``fields`` and cast to the schema's types.

    Columns come in the canonical order, required fields first, then the rest sorted by name;
    :func:`decode_batch` produces the same order.

    This is where every field a strategy did not declare is stripped.
    """
    wanted = list(REQUIRED_FIELDS) + sorted(set(fields) - set(REQUIRED_FIELDS))
    missing = [f for f in wanted if f not in events.columns]
    if missing:
        raise DataError(f"events lack fields {missing} (have {events.columns})")
    return events.select([pl.col(f).cast(EVENT_SCHEMA[f]) for f in wanted])


def encode_batch(batch: Batch) -> bytes:
    """The deterministic column-wise CBOR encoding of ``batch``."""
    events = batch.events
    cols: dict[str, Any] = {}
    for name in events.columns:
        if name not in EVENT_SCHEMA:
            raise DataError(f"column {name!r} is not in the event schema")
        series = events.get_column(name)
        if series.dtype != EVENT_SCHEMA[name]:
            series = series.cast(EVENT_SCHEMA[name])
        nulls = series.null_count()
        col: dict[str, Any]
        if EVENT_SCHEMA[name] == pl.String:
            codes, uniques = _dictionary(series)
            col = {"t": "str", "dict": uniques, "codes": codes.astype("<u4").tobytes()}
        else:
            values = _int_values(series, nulls)
            col = {"t": "i64", "d": values.tobytes()}
        if nulls:
            valid = _validity(series)
            col["valid"] = np.packbits(valid, bitorder="little").tobytes()
        cols[name] = col
    doc = {"v": WIRE_VERSION, "seq": batch.seq, "n": events.height, "cols": cols}
    return cbor2.dumps(doc, canonical=True)


# Series-level polars calls that go through an expression cost ~0.1-0.3 ms each, whatever the
# length, while to_list() costs microseconds: small batches (the common case) take the list path.
_SMALL: Final = 4096


def _int_values(series: pl.Series, nulls: int) -> np.ndarray[Any, Any]:
    """The column's values as little-endian int64, nulls as 0."""
    if not nulls:
        return series.to_numpy().astype("<i8", copy=False)
    if series.len() <= _SMALL:
        items = series.to_list()
        return np.fromiter((0 if v is None else v for v in items), dtype="<i8", count=len(items))
    return series.fill_null(0).to_numpy().astype("<i8", copy=False)


def _validity(series: pl.Series) -> np.ndarray[Any, Any]:
    if series.len() <= _SMALL:
        items = series.to_list()
        return np.fromiter((v is not None for v in items), dtype=bool, count=len(items))
    return series.is_not_null().to_numpy()


def _dictionary(series: pl.Series) -> tuple[np.ndarray[Any, Any], list[str]]:
    """Distinct values in first-seen order (null as "") and each row's index into them."""
    if series.len() > _SMALL:
        filled = series.fill_null("")
        uniques: list[str] = filled.unique(maintain_order=True).to_list()
        coded = filled.replace_strict(uniques, range(len(uniques)), return_dtype=pl.UInt32)
        return coded.to_numpy().astype("<u4", copy=False), uniques
    values = series.to_list()
    index: dict[str, int] = {}
    codes = np.empty(len(values), dtype="<u4")
    for i, v in enumerate(values):
        codes[i] = index.setdefault("" if v is None else v, len(index))
    return codes, list(index)


def decode_batch(data: bytes, *, max_events: int = MAX_BATCH_EVENTS) -> Batch:
    """Decode a batch; raises :class:`DataError` naming the problem on any malformed input."""
    doc = _loads(data, "batch")
    if not isinstance(doc, dict) or set(doc) != {"v", "seq", "n", "cols"}:
        raise DataError("batch: expected a map with keys v, seq, n, cols")
    if doc["v"] != WIRE_VERSION:
        raise DataError(f"batch: wire version {doc['v']!r}, this build speaks {WIRE_VERSION}")
    seq, n, cols = doc["seq"], doc["n"], doc["cols"]
    if type(seq) is not int or seq < 0:
        raise DataError(f"batch: seq must be a non-negative int, got {seq!r}")
    if type(n) is not int or not 0 <= n <= max_events:
        raise DataError(f"batch {seq}: event count {n!r} outside 0..{max_events}")
    if not isinstance(cols, dict) or not all(isinstance(k, str) for k in cols):
        raise DataError(f"batch {seq}: cols must be a map of field name to column")
    missing = [f for f in REQUIRED_FIELDS if f not in cols]
    if missing:
        raise DataError(f"batch {seq}: required fields {missing} absent")
    series = {name: _decode_column(seq, name, col, n) for name, col in cols.items()}
    order = list(REQUIRED_FIELDS) + sorted(c for c in cols if c not in REQUIRED_FIELDS)
    frame = pl.DataFrame([series[c] for c in order])
    return Batch(seq=seq, events=frame)


def _decode_column(seq: int, name: str, col: object, n: int) -> pl.Series:
    where = f"batch {seq} column {name!r}"
    if name not in EVENT_SCHEMA:
        raise DataError(f"{where}: not in the event schema")
    if not isinstance(col, dict):
        raise DataError(f"{where}: expected a map")
    kind = col.get("t")
    expected_kind = "str" if EVENT_SCHEMA[name] == pl.String else "i64"
    if kind != expected_kind:
        raise DataError(f"{where}: type {kind!r}, schema says {expected_kind!r}")
    allowed = {"t", "dict", "codes", "valid"} if kind == "str" else {"t", "d", "valid"}
    if not set(col) <= allowed:
        raise DataError(f"{where}: unexpected keys {sorted(set(col) - allowed)}")
    valid: np.ndarray[Any, Any] | None = None
    if "valid" in col:
        bits = _bytes_of(col["valid"], (n + 7) // 8, where, "valid")
        unpacked = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), bitorder="little")[:n]
        valid = unpacked.astype(bool)
    if kind == "i64":
        ints = np.frombuffer(_bytes_of(col.get("d"), n * 8, where, "d"), dtype="<i8")
        # a masked array becomes a series with nulls in one step (a when/then costs ~2x)
        data = ints if valid is None else np.ma.masked_array(ints, mask=~valid)
        return pl.Series(name, data, dtype=pl.Int64)
    uniques = col.get("dict")
    if not isinstance(uniques, list) or not all(
        isinstance(u, str) and len(u) <= _MAX_STR for u in uniques
    ):
        raise DataError(f"{where}: dict must be a list of strings of at most {_MAX_STR}")
    if len(set(uniques)) != len(uniques):
        raise DataError(f"{where}: dict has duplicates")
    codes = np.frombuffer(_bytes_of(col.get("codes"), n * 4, where, "codes"), dtype="<u4")
    if n and int(codes.max()) >= len(uniques):
        raise DataError(f"{where}: code {int(codes.max())} outside dict of {len(uniques)}")
    strings: list[str | None] = np.array(uniques, dtype=object)[codes].tolist() if n else []
    if valid is not None:
        strings = [v if ok else None for v, ok in zip(strings, valid.tolist(), strict=True)]
    return pl.Series(name, strings, dtype=pl.String)


def _bytes_of(value: object, length: int, where: str, key: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != length:
        got = len(value) if isinstance(value, bytes) else type(value).__name__
        raise DataError(f"{where}: {key} must be {length} bytes, got {got}")
    return value


def encode_signals(signals: Sequence[Signal]) -> bytes:
    """The deterministic CBOR encoding of a batch's signals (the body of an OUT record)."""
    items = [
        {
            "symbol": s.symbol,
            "side": s.side,
            "qty": s.quantity,
            "limit": s.limit_price,
            "hints": [list(h) for h in s.hints],
        }
        for s in signals
    ]
    return cbor2.dumps({"v": WIRE_VERSION, "signals": items}, canonical=True)


def decode_signals(data: bytes) -> list[Signal]:
    """Decode signals; raises :class:`DataError` on any malformed input."""
    doc = _loads(data, "signals")
    if not isinstance(doc, dict) or set(doc) != {"v", "signals"} or doc["v"] != WIRE_VERSION:
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


def _loads(data: bytes, what: str) -> Any:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DataError(f"{what}: expected bytes, got {type(data).__name__}")
    try:
        return cbor2.loads(bytes(data), allow_duplicate_keys=False, allow_indefinite=False)
    except Exception as exc:  # cbor2 raises several types; all mean the same to the caller
        raise DataError(f"{what}: not valid CBOR ({type(exc).__name__}: {exc})") from None
