"""Wire codecs: round trips (property tests) and malformed input giving DataError only."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import struct

import cbor2
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench import _cbor
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
from zcbench.strategy._wire import BatchColumns, _frame_of, select_columns

INT_FIELDS = [f for f, t in EVENT_SCHEMA.items() if t == pl.Int64 and f != "ts"]
i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
text = st.text(max_size=20)  # past 12 bytes a string view points into a data buffer


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


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(batches())
def test_batch_round_trip_is_exact(batch: Batch) -> None:
    wire = encode_batch(batch)
    back = decode_batch(wire, seq=batch.seq)
    assert back.seq == batch.seq
    assert back.events.columns == batch.events.columns
    assert back.events.schema == batch.events.schema
    assert back.events.equals(batch.events)
    assert encode_batch(back) == wire  # canonical: re-encoding gives the same bytes


def _reference_encoding(batch: Batch, version: int = 2) -> bytes:
    """The wire format spelled out row by row in plain Python (the codec itself is vectorised);
    version 1 (read, no longer written) carried the batch's seq."""
    cols: dict[str, dict[str, object]] = {}
    for name in batch.events.columns:
        values = batch.events.get_column(name).cast(EVENT_SCHEMA[name]).to_list()
        col: dict[str, object]
        if EVENT_SCHEMA[name] == pl.String:
            index: dict[str, int] = {}  # first-seen order, null as ""
            codes = [index.setdefault("" if v is None else v, len(index)) for v in values]
            col = {"t": "str", "dict": list(index), "codes": struct.pack(f"<{len(codes)}I", *codes)}
        else:
            ints = [0 if v is None else v for v in values]
            col = {"t": "i64", "d": struct.pack(f"<{len(ints)}q", *ints)}
        if None in values:
            bits = bytearray((len(values) + 7) // 8)
            for i, v in enumerate(values):
                if v is not None:
                    bits[i // 8] |= 1 << (i % 8)
            col["valid"] = bytes(bits)
        cols[name] = col
    doc: dict[str, object] = {"v": version, "n": batch.events.height, "cols": cols}
    if version == 1:
        doc["seq"] = batch.seq
    return cbor2.dumps(doc, canonical=True)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(batches(), st.data())
def test_batch_encoding_matches_reference(batch: Batch, data: st.DataObject) -> None:
    assert encode_batch(batch) == _reference_encoding(batch)
    # a slice shares its parent's buffers at an offset, with whatever the parent had in null slots
    start = data.draw(st.integers(0, batch.events.height))
    length = data.draw(st.integers(0, batch.events.height - start))
    part = Batch(seq=batch.seq, events=batch.events.slice(start, length))
    assert encode_batch(part) == _reference_encoding(part)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(batches(), st.data())
def test_prepared_columns_encode_every_range_as_encode_batch_does(
    batch: Batch, data: st.DataObject
) -> None:
    # prepared over a slice (an offset into shared buffers), then any range of it
    height = batch.events.height
    first = data.draw(st.integers(0, height))
    frame = batch.events.slice(first, data.draw(st.integers(0, height - first)))
    columns = BatchColumns(frame)
    start = data.draw(st.integers(0, frame.height))
    end = data.draw(st.integers(start, frame.height))
    part = Batch(seq=batch.seq, events=frame.slice(start, end - start))
    assert columns.encode(start, end) == _reference_encoding(part)


def test_prepared_columns_refuse_a_range_outside_the_frame() -> None:
    frame = pl.DataFrame({"ts": [1, 2], "symbol": ["a", "b"]})
    with pytest.raises(DataError, match="outside"):
        BatchColumns(frame).encode(1, 3)


def _signals(bound: int, max_size: int) -> st.SearchStrategy[list[Signal]]:
    """Lists of signals whose integers reach ``bound`` in size."""
    return st.lists(
        st.builds(
            Signal,
            symbol=st.text(min_size=1, max_size=8),
            side=st.sampled_from(["buy", "sell"]),
            quantity=st.integers(min_value=1, max_value=bound),
            limit_price=st.none() | st.integers(min_value=1, max_value=bound),
            hints=st.lists(
                st.tuples(st.text(max_size=6), st.integers(-bound, bound) | st.text(max_size=6)),
                max_size=3,
                unique_by=lambda h: h[0],
            ).map(tuple),
        ),
        max_size=max_size,
    )


signals_st = _signals(2**62, 8)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(signals_st)
def test_signals_round_trip_is_exact(signals: list[Signal]) -> None:
    wire = encode_signals(signals)
    assert decode_signals(wire) == signals
    assert encode_signals(decode_signals(wire)) == wire


# across the 64-bit heads' edge: beyond it the canonical writer refuses the int
wide_signals_st = _signals(2**65, 4)


def _sorted_encoding(signals: list[Signal]) -> bytes | type[Exception]:
    """The signals document as the sorting canonical writer writes it (or the error it
    raises), its maps built in no particular key order."""
    doc = {
        "signals": [
            {"symbol": s.symbol, "side": s.side, "hints": [list(h) for h in s.hints],
             "limit": s.limit_price, "qty": s.quantity}
            for s in signals
        ],
        "v": 1,
    }
    try:
        return _cbor.encode_canonical(doc)
    except _cbor.CborError:
        return _cbor.CborError


@settings(max_examples=200, deadline=None)
@given(wide_signals_st)
def test_signals_encoding_is_the_sorting_writers(signals: list[Signal]) -> None:
    # the signals are built in canonical key order and written as built: the same bytes as
    # the sorting writer's, and the same refusal of an int no CBOR head holds
    expected = _sorted_encoding(signals)
    if expected is _cbor.CborError:
        with pytest.raises(_cbor.CborError):
            encode_signals(signals)
    else:
        assert encode_signals(signals) == expected


def test_signals_encoding_of_a_str_subclass_is_plain_text() -> None:
    class Name(str):
        pass

    signal = Signal(Name("MSFT"), "buy", 3, None, ((Name("urgency"), "high"),))
    plain = Signal("MSFT", "buy", 3, None, (("urgency", "high"),))
    assert encode_signals([signal]) == encode_signals([plain]) == _sorted_encoding([plain])


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
    for decode in (functools.partial(decode_batch, seq=4), decode_signals):
        with contextlib.suppress(DataError):
            decode(data)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_encodings_give_data_error_only(data: st.DataObject) -> None:
    # Truncated or extended encodings are refused; a flipped bit is refused or gives another
    # value whose one encoding these bytes are. (Suppressing DataError alone could never fail.)
    codecs = (
        (_good_batch(), functools.partial(decode_batch, seq=4), encode_batch),
        (_good_signals(), decode_signals, encode_signals),
    )
    for good, decode, encode in codecs:
        raw = bytearray(good)
        action = data.draw(st.sampled_from(["flip", "truncate", "append"]))
        if action == "flip":
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "truncate":
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
        else:
            raw += data.draw(st.binary(min_size=1, max_size=8))
        try:
            value = decode(bytes(raw))
        except DataError:
            continue
        assert action == "flip", f"{action}: {bytes(raw).hex()} was accepted"
        assert encode(value) == bytes(raw)  # type: ignore[arg-type]


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
        ({"v": 1}, "wire version"),  # version 1 carried a seq
        ({"v": 3}, "wire version"),
        ({"seq": 4}, "wire version"),  # version 2 carries none
        ({"v": 1, "seq": 5}, "say seq 5, it was given as 4"),
        ({"v": 1, "seq": True}, "say seq true"),
        ({"n": 4}, "must be 32 bytes"),
        ({"n": 10**9}, "event count"),
        ({"ts": {"t": "str", "dict": [], "codes": b""}}, "schema says"),
        ({"bogus": {"t": "i64", "d": b"\0" * 24}}, "not in the event schema"),
        ({"symbol": {"t": "str", "dict": ["A"], "codes": b"\1\0\0\0" * 3}}, "outside dict"),
        ({"symbol": {"t": "str", "dict": ["A", "A"], "codes": b"\0\0\0\0" * 3}}, "duplicates"),
        ({"price": {"t": "i64", "d": b"\0" * 24, "valid": b"\0\0"}}, "valid must be 1 bytes"),
        # one batch, one encoding: the validity bitmap and the null slots as encode_batch writes
        ({"price": {"t": "i64", "d": b"\0" * 24, "valid": b"\x0d"}}, "bits set past the 3 rows"),
        ({"price": {"t": "i64", "d": b"\0" * 24, "valid": b"\x07"}}, "only for a column with"),
        (
            {"price": {"t": "i64", "d": struct.pack("<3q", 5, 6, 7), "valid": b"\x05"}},
            "null row's value must be sent as 0",
        ),
        (
            {"symbol": {"t": "str", "dict": ["A"], "codes": b"\0\0\0\0" * 3, "valid": b"\x05"}},
            'null row must be sent as the code of ""',
        ),
        (
            {"symbol": {"t": "str", "dict": ["A", ""], "codes": struct.pack("<3I", 0, 1, 0),
                        "valid": b"\x06"}},
            'null row must be sent as the code of ""',
        ),
        (
            {"symbol": {"t": "str", "dict": ["A", "B"], "codes": struct.pack("<3I", 1, 0, 1)}},
            "first-seen order",
        ),
        (
            {"symbol": {"t": "str", "dict": ["A", "B"], "codes": struct.pack("<3I", 0, 0, 0)}},
            "first-seen order",
        ),
    ],
)
def test_malformed_batch_fields_are_named(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(DataError, match=needle):
        decode_batch(_doc(**changes), seq=4)


def test_null_rows_sent_as_encode_batch_writes_them_decode() -> None:
    # the refusals above are exact: the same columns with their nulls where the checks say
    price = {"t": "i64", "d": struct.pack("<3q", 5, 0, 7), "valid": b"\x05"}
    symbol = {"t": "str", "dict": ["A", ""], "codes": struct.pack("<3I", 0, 1, 0), "valid": b"\x05"}
    events = decode_batch(_doc(price=price, symbol=symbol), seq=4).events
    assert events["price"].to_list() == [5, None, 7]
    assert events["symbol"].to_list() == ["A", None, "A"]


@settings(max_examples=60, deadline=None)
@given(batches())
def test_decoded_frame_is_the_public_construction(batch: Batch) -> None:
    # decode_batch builds its frame with polars' native constructors; the public ones from
    # the same Arrow columns give the same frame, dtypes and chunks
    columns = batch.events.to_arrow().columns
    arrays = {c: a.combine_chunks() for c, a in zip(batch.events.columns, columns, strict=True)}
    got = _frame_of(list(batch.events.columns), arrays)
    want = pl.DataFrame([pl.Series(c, arrays[c]) for c in batch.events.columns])
    assert got.schema == want.schema
    assert got.equals(want)
    assert got.n_chunks("all") == want.n_chunks("all")


def test_missing_required_field_is_refused() -> None:
    doc = cbor2.loads(_good_batch())
    del doc["cols"]["ts"]
    with pytest.raises(DataError, match="required fields"):
        decode_batch(cbor2.dumps(doc), seq=4)


def test_select_fields_strips_undeclared_fields() -> None:
    frame = pl.DataFrame({"ts": [1], "symbol": ["A"], "price": [5], "size": [7], "bid": [4]})
    out = select_fields(frame, ["size", "price"])
    assert out.columns == ["ts", "symbol", "price", "size"]
    with pytest.raises(DataError, match="lack fields"):
        select_fields(frame, ["ask"])


@settings(max_examples=60, deadline=None)
@given(batches(), st.data())
def test_select_columns_is_the_public_selection(batch: Batch, data: st.DataObject) -> None:
    # the frame's own selection (what the live proxy calls per batch) against polars' public
    # one, over sliced frames (an offset into shared buffers) with nulls
    frame = batch.events
    start = data.draw(st.integers(0, frame.height))
    part = frame.slice(start, data.draw(st.integers(0, frame.height - start)))
    names = data.draw(st.permutations(part.columns))
    names = names[: data.draw(st.integers(1, len(names)))]
    got = select_columns(part, names)
    assert got.columns == list(names)
    assert got.equals(part.select(names))


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
        decode_signals(cbor2.dumps(doc, canonical=True))
    # the same map in insertion order is not the format's one encoding
    with pytest.raises(DataError, match="canonical order"):
        decode_signals(cbor2.dumps(doc))


def _golden_frames() -> dict[str, pl.DataFrame]:
    """Representative batches whose encodings are pinned below (built without randomness)."""
    schema = {"ts": pl.Int64, "symbol": pl.String, "kind": pl.String, "price": pl.Int64}

    def frame(n: int, start: int = 0) -> pl.DataFrame:
        rows = range(start, start + n)
        return pl.DataFrame(
            {
                "ts": [1_700_000_000_000_000_000 + 7 * i for i in rows],
                "symbol": [None if i % 11 == 3 else ["B", "A", "", "CC"][i % 4] for i in rows],
                "kind": [None if i % 5 == 0 else ["trade", "quote"][i % 3 % 2] for i in rows],
                "price": [None if i % 3 == 1 else (-1) ** i * i * 1_000_003 for i in rows],
            },
            schema=schema,
        )

    big = frame(6000)
    return {
        "empty": pl.DataFrame(
            {"ts": [], "symbol": []}, schema={"ts": pl.Int64, "symbol": pl.String}
        ),
        "empty_with_nullable_fields": frame(0),
        "tiny_nulls": frame(5),
        "small_nulls": frame(13),
        "all_null_columns": pl.DataFrame(
            {"ts": [5, 6, 7], "symbol": [None, None, None], "size": [None, None, None]},
            schema={"ts": pl.Int64, "symbol": pl.String, "size": pl.Int64},
        ),
        "extreme_ints": pl.DataFrame(
            {"ts": [-(2**63), 2**63 - 1, 0], "symbol": ["\u00e9", "x" * 256, "\u00e9"]},
            schema={"ts": pl.Int64, "symbol": pl.String},
        ),
        "below_4096": frame(1000),
        "above_4096": big,
        "slice_at_odd_offset": big.slice(1237, 1003),  # offsets into shared Arrow buffers
        "two_chunks": pl.concat([frame(700), frame(900, start=700)], rechunk=False),
        "int32_cast": frame(50).with_columns(pl.col("price").cast(pl.Int32)),
    }


# The version-1 encodings of _golden_frames() (seq 42, which version 1 carried): a full hex dump
# for the small ones, SHA-256 and length for the rest. Logs recorded before version 2 hold these
# bodies: they must still decode, so these pins never change.
GOLDEN_V1: dict[str, str] = {
    "above_4096": "146408:dd22fb40f63a05f01ff8a8165b510555441b33bfbda4e00b33c565b4c5f4b51d",
    "all_null_columns": (
        "a4616e0361760163736571182a64636f6c73a3627473a2616458180500000000000000060000000000000007"
        "000000000000006174636936346473697a65a361645818000000000000000000000000000000000000000000"
        "0000006174636936346576616c696441006673796d626f6ca46174637374726464696374816065636f646573"
        "4c0000000000000000000000006576616c69644100"
    ),
    "below_4096": "24530:489374f37cad326862bc9041c863e34feae4856c371f41345c6a8a3bf4fb0fb9",
    "empty": (
        "a4616e0061760163736571182a64636f6c73a2627473a26164406174636936346673796d626f6ca361746373"
        "747264646963748065636f64657340"
    ),
    "empty_with_nullable_fields": (
        "a4616e0061760163736571182a64636f6c73a4627473a2616440617463693634646b696e64a3617463737472"
        "64646963748065636f64657340657072696365a26164406174636936346673796d626f6ca361746373747264"
        "646963748065636f64657340"
    ),
    "extreme_ints": "358:ca57cb4c64c27cb7d508c65ae2f353d0a01dd45f973105492817af675e65fbe7",
    "int32_cast": "1370:7dcfa02ad2ef872d01e3ff03d84d63449c0739b550addf423cb6011ea7928b3c",
    "slice_at_odd_offset": (
        "24605:a244567b52fdb94bd372fa195bc8941b52b6a6d578753561aab2eb6d8feb1780"
    ),
    "small_nulls": "464:5a49b880f326aae515f8140c2f5ca81df972eb1016ae2df20571173b352b4e74",
    "tiny_nulls": (
        "a4616e0561760163736571182a64636f6c73a4627473a26164582800002a36fe9c971707002a36fe9c97170e"
        "002a36fe9c971715002a36fe9c97171c002a36fe9c9717617463693634646b696e64a4617463737472646469"
        "637483606571756f746565747261646565636f64657354000000000100000002000000020000000100000065"
        "76616c6964411e657072696365a3616458280000000000000000000000000000000086841e00000000003739"
        "d2ffffffffff00000000000000006174636936346576616c6964410d6673796d626f6ca46174637374726464"
        "69637483614261416065636f6465735400000000010000000200000002000000000000006576616c69644117"
    ),
    "two_chunks": "39155:662d39c75b03189684b2a0563efefd4bdea0f4dc83ce269f30b7bb734314e6e1",
}


# The version-2 encodings of the same frames: version 1's without its seq entry (six bytes
# here), under v 2. The wire is a contract with recorded audit logs: these must never change.
GOLDEN: dict[str, str] = {
    "above_4096": "146402:4d45f62db72f6bbe4cf804b62d09909faf669a0d394be70ac86a88d7fce7f6e5",
    "all_null_columns": (
        "a3616e0361760264636f6c73a3627473a2616458180500000000000000060000000000000007000000000000"
        "006174636936346473697a65a361645818000000000000000000000000000000000000000000000000617463"
        "6936346576616c696441006673796d626f6ca46174637374726464696374816065636f6465734c0000000000"
        "000000000000006576616c69644100"
    ),
    "below_4096": "24524:a56d5126eca8d21d3d8577dfb58916c7d89012f0038057708226664175a0ff9d",
    "empty": (
        "a3616e0061760264636f6c73a2627473a26164406174636936346673796d626f6ca361746373747264646963"
        "748065636f64657340"
    ),
    "empty_with_nullable_fields": (
        "a3616e0061760264636f6c73a4627473a2616440617463693634646b696e64a3617463737472646469637480"
        "65636f64657340657072696365a26164406174636936346673796d626f6ca361746373747264646963748065"
        "636f64657340"
    ),
    "extreme_ints": "352:3d3636fed2cb103c0daebf87444fb65818b9e3240a86357dd16a28d771ea49bb",
    "int32_cast": "1364:0b5dddee46de5d1f949349028185b4c3a798929dcd9db1b1eacccd0230100491",
    "slice_at_odd_offset": (
        "24599:fae479a9e5708b5a8a7ba88b5b2ae6b6dbbbfcd9d1ea206fbb8335263377df55"
    ),
    "small_nulls": "458:06336d116a162bec758de144797f630f2f5fea4cb8b2ae383ae23c5900527096",
    "tiny_nulls": (
        "a3616e0561760264636f6c73a4627473a26164582800002a36fe9c971707002a36fe9c97170e002a36fe9c97"
        "1715002a36fe9c97171c002a36fe9c9717617463693634646b696e64a4617463737472646469637483606571"
        "756f746565747261646565636f6465735400000000010000000200000002000000010000006576616c696441"
        "1e657072696365a3616458280000000000000000000000000000000086841e00000000003739d2ffffffffff"
        "00000000000000006174636936346576616c6964410d6673796d626f6ca46174637374726464696374836142"
        "61416065636f6465735400000000010000000200000002000000000000006576616c69644117"
    ),
    "two_chunks": "39149:c7f91de5b807734a4fadc9cc380516f5fd574b80f16bf6a49e87962a7967bcb3",
}


@pytest.mark.parametrize("name", sorted(_golden_frames()))
def test_batch_encoding_is_pinned(name: str) -> None:
    frame = _golden_frames()[name]
    wire = encode_batch(Batch(seq=42, events=frame))
    assert _fingerprint(wire) == GOLDEN[name]
    assert wire == _reference_encoding(Batch(seq=42, events=frame))
    # the seq is not in the bytes: the same events are the same bytes as any batch
    assert encode_batch(Batch(seq=0, events=frame)) == wire
    back = decode_batch(wire, seq=42)
    assert back.seq == 42
    assert back.events.equals(frame.cast({c: EVENT_SCHEMA[c] for c in frame.columns}))
    assert decode_batch(wire, seq=7).events.equals(back.events)


@pytest.mark.parametrize("name", sorted(_golden_frames()))
def test_version_1_batches_of_recorded_logs_still_decode_held_to_their_seq(name: str) -> None:
    frame = _golden_frames()[name]
    logged = _reference_encoding(Batch(seq=42, events=frame), version=1)
    assert _fingerprint(logged) == GOLDEN_V1[name]  # exactly the bytes version 1 wrote
    if ":" not in GOLDEN_V1[name]:  # a full hex dump
        assert logged == bytes.fromhex(GOLDEN_V1[name])
    back = decode_batch(logged, seq=42)
    assert back.seq == 42
    assert back.events.equals(frame.cast({c: EVENT_SCHEMA[c] for c in frame.columns}))
    with pytest.raises(DataError, match="its bytes say seq 42, it was given as 43"):
        decode_batch(logged, seq=43)


def _fingerprint(wire: bytes) -> str:
    if len(wire) <= 300:
        return wire.hex()
    return f"{len(wire)}:{hashlib.sha256(wire).hexdigest()}"
