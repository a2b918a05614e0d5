"""Wire codecs: round trips (property tests) and malformed input giving DataError only."""

from __future__ import annotations

import contextlib

import cbor2
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.errors import DataError
from zcbench.strategy import (
    EVENT_SCHEMA,
    Batch,
    Signal,
    decode_batch,
    decode_signals,
    encode_batch,
    encode_signals,
    select_fields,
)

INT_FIELDS = [f for f, t in EVENT_SCHEMA.items() if t == pl.Int64 and f != "ts"]
i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
text = st.text(max_size=12)


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    n = draw(st.integers(min_value=0, max_value=30))
    fields = draw(st.lists(st.sampled_from([*INT_FIELDS, "kind"]), unique=True, max_size=5))
    data: dict[str, list[object]] = {
        "ts": draw(st.lists(i64, min_size=n, max_size=n)),
        "symbol": draw(st.lists(text, min_size=n, max_size=n)),
    }
    for f in fields:
        values = i64 if EVENT_SCHEMA[f] == pl.Int64 else text
        data[f] = draw(st.lists(st.none() | values, min_size=n, max_size=n))
    frame = pl.DataFrame(data, schema={k: EVENT_SCHEMA[k] for k in data})
    seq = draw(st.integers(min_value=0, max_value=2**40))
    return Batch(seq=seq, events=select_fields(frame, fields))


@settings(max_examples=150, deadline=None)
@given(batches())
def test_batch_round_trip_is_exact(batch: Batch) -> None:
    wire = encode_batch(batch)
    back = decode_batch(wire)
    assert back.seq == batch.seq
    assert back.events.columns == batch.events.columns
    assert back.events.schema == batch.events.schema
    assert back.events.equals(batch.events)
    assert encode_batch(back) == wire  # canonical: re-encoding gives the same bytes


signals_st = st.lists(
    st.builds(
        Signal,
        symbol=st.text(min_size=1, max_size=8),
        side=st.sampled_from(["buy", "sell"]),
        quantity=st.integers(min_value=1, max_value=2**62),
        limit_price=st.none() | st.integers(min_value=1, max_value=2**62),
        hints=st.lists(
            st.tuples(st.text(max_size=6), st.integers(-(2**62), 2**62) | st.text(max_size=6)),
            max_size=3,
            unique_by=lambda h: h[0],
        ).map(tuple),
    ),
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(signals_st)
def test_signals_round_trip_is_exact(signals: list[Signal]) -> None:
    wire = encode_signals(signals)
    assert decode_signals(wire) == signals
    assert encode_signals(decode_signals(wire)) == wire


def _good_batch() -> bytes:
    frame = pl.DataFrame(
        {"ts": [1, 2, 3], "symbol": ["A", "B", "A"], "price": [10, None, 12]},
        schema={"ts": pl.Int64, "symbol": pl.String, "price": pl.Int64},
    )
    return encode_batch(Batch(seq=4, events=frame))


def _good_signals() -> bytes:
    return encode_signals([Signal("A", "buy", 3, 100, (("urgency", 1),))])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_give_data_error_only(data: bytes) -> None:
    for decode in (decode_batch, decode_signals):
        with contextlib.suppress(DataError):
            decode(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_encodings_give_data_error_only(data: st.DataObject) -> None:
    for good, decode in ((_good_batch(), decode_batch), (_good_signals(), decode_signals)):
        raw = bytearray(good)
        action = data.draw(st.sampled_from(["flip", "truncate", "append"]))
        if action == "flip":
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "truncate":
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
        else:
            raw += data.draw(st.binary(min_size=1, max_size=8))
        with contextlib.suppress(DataError):
            decode(bytes(raw))


def _doc(**changes: object) -> bytes:
    doc = cbor2.loads(_good_batch())
    cols = doc["cols"]
    for key, value in changes.items():
        if key in ("v", "seq", "n"):
            doc[key] = value
        else:
            cols[key] = value
    return cbor2.dumps(doc, canonical=True)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"v": 2}, "wire version"),
        ({"seq": -1}, "seq"),
        ({"n": 4}, "must be 32 bytes"),
        ({"n": 10**9}, "event count"),
        ({"ts": {"t": "str", "dict": [], "codes": b""}}, "schema says"),
        ({"bogus": {"t": "i64", "d": b"\0" * 24}}, "not in the event schema"),
        ({"symbol": {"t": "str", "dict": ["A"], "codes": b"\1\0\0\0" * 3}}, "outside dict"),
        ({"symbol": {"t": "str", "dict": ["A", "A"], "codes": b"\0\0\0\0" * 3}}, "duplicates"),
        ({"price": {"t": "i64", "d": b"\0" * 24, "valid": b"\0\0"}}, "valid must be 1 bytes"),
    ],
)
def test_malformed_batch_fields_are_named(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(DataError, match=needle):
        decode_batch(_doc(**changes))


def test_missing_required_field_is_refused() -> None:
    doc = cbor2.loads(_good_batch())
    del doc["cols"]["ts"]
    with pytest.raises(DataError, match="required fields"):
        decode_batch(cbor2.dumps(doc))


def test_select_fields_strips_undeclared_fields() -> None:
    frame = pl.DataFrame({"ts": [1], "symbol": ["A"], "price": [5], "size": [7], "bid": [4]})
    out = select_fields(frame, ["size", "price"])
    assert out.columns == ["ts", "symbol", "price", "size"]
    with pytest.raises(DataError, match="lack fields"):
        select_fields(frame, ["ask"])


def test_signal_hints_are_checked_and_sorted() -> None:
    s = Signal("A", "buy", 1, hints=(("z", 1), ("a", "x")))
    assert s.hints == (("a", "x"), ("z", 1))
    for bad in ((("a", 1), ("a", "x")), (("a", 1.5),), ((1, 2),), (("a",),), ("abc",)):
        with pytest.raises(DataError):
            Signal("A", "buy", 1, hints=bad)  # type: ignore[arg-type]


def test_decode_signals_with_clashing_hints_is_data_error() -> None:
    doc = {
        "v": 1,
        "signals": [
            {"symbol": "A", "side": "buy", "qty": 1, "limit": None, "hints": [["a", 1], ["a", "x"]]}
        ],
    }
    with pytest.raises(DataError, match="signal 0"):
        decode_signals(cbor2.dumps(doc))


def test_small_and_large_batch_paths_encode_identically(monkeypatch: pytest.MonkeyPatch) -> None:
    import zcbench.strategy._wire as wire

    n = 5000
    frame = pl.DataFrame(
        {
            "ts": list(range(n)),
            "symbol": [None if i % 7 == 0 else f"S{i % 3}" for i in range(n)],
            "price": [None if i % 5 == 0 else i * 3 for i in range(n)],
            "size": [i for i in range(n)],
        },
        schema={"ts": pl.Int64, "symbol": pl.String, "price": pl.Int64, "size": pl.Int64},
    )
    batch = Batch(seq=1, events=frame)
    large = encode_batch(batch)  # n > _SMALL: polars path
    assert decode_batch(large).events.equals(frame)
    monkeypatch.setattr(wire, "_SMALL", 10**9)
    assert encode_batch(batch) == large  # list path, same bytes
