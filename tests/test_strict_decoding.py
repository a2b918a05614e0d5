"""Strict decoding everywhere (issue 10): every format zcbench decodes refuses valid + junk,
non-shortest forms, duplicate keys, nesting and sizes past its bounds, each with its own
documented error naming what and where; and every corruption of a good encoding is refused or
is itself the one encoding of what it decodes to."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
import polars as pl
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.auditlog._errors import LogFormatError
from zcbench.auditlog.export import SLICE_FORMAT, read_slice
from zcbench.auditlog.records import decode_record, encode_record
from zcbench.channel import FrameError, Message, decode_body, encode_frame
from zcbench.errors import DataError
from zcbench.keys import DataKey, UnsealError, read_sealed_header, seal_strategy, unseal_strategy
from zcbench.keys._seal import SEAL_ALG, _aad
from zcbench.nitro import AttestationError, parse_document
from zcbench.nitro.binding import user_data_checkpoint
from zcbench.strategy import (
    Batch,
    Signal,
    decode_batch,
    decode_signals,
    encode_batch,
    encode_signals,
)

KEY = DataKey(plaintext=b"\x11" * 32, ciphertext_blob=b"blob", key_id="zcbench:local:key/test")
DOCUMENT = (Path(__file__).parent / "vectors" / "nitro" / "doc_1.cbor").read_bytes()


def _batch() -> Batch:
    frame = pl.DataFrame(
        {"ts": [1, 2, 3], "symbol": ["A", "B", "A"], "price": [10, None, 12]},
        schema={"ts": pl.Int64, "symbol": pl.String, "price": pl.Int64},
    )
    return Batch(seq=4, events=frame)


def _signals() -> list[Signal]:
    return [Signal("A", "buy", 3, 100, (("urgency", 1),)), Signal("B", "sell", 1)]


def _slice_bytes() -> bytes:
    entry = {"record": encode_record(index=1, kind="note", body=b"n", time_ns=5),
             "proof": [bytes(32)]}  # fmt: skip
    doc = {"format": SLICE_FORMAT, "boot": {"record": b"boot", "proof": []},
           "checkpoint": b"note", "entries": [entry], "selection": "index [1, 2)"}  # fmt: skip
    return cbor2.dumps(doc, canonical=True)


def _sealed_with_inner(plaintext: bytes) -> bytes:
    """A sealed payload whose (authenticated) inner plaintext is exactly ``plaintext``."""
    header = {"v": 1, "alg": SEAL_ALG, "strategy": "s", "key_id": KEY.key_id,
              "data_key_blob": KEY.ciphertext_blob}  # fmt: skip
    nonce = b"\x07" * 12
    ciphertext = AESGCMSIV(KEY.plaintext).encrypt(nonce, plaintext, _aad(header))
    return cbor2.dumps({**header, "nonce": nonce, "ciphertext": ciphertext}, canonical=True)


def _inner(data: bytes) -> object:
    return unseal_strategy(_sealed_with_inner(data), KEY.plaintext)


def _user_data(data: bytes) -> object:
    return user_data_checkpoint(data)


@dataclass(frozen=True)
class Format:
    name: str
    good: bytes
    decode: Callable[[bytes], object]
    error: type[Exception]
    opaque: bool = False  # its error says nothing (unsealing)


FORMATS = [
    Format("batch", encode_batch(_batch()), functools.partial(decode_batch, seq=4), DataError),
    Format("signals", encode_signals(_signals()), decode_signals, DataError),
    Format("frame", encode_frame(Message("ingest", {"seq": 4, "batch": b"x"}))[4:],
           decode_body, FrameError),
    Format("record", encode_record(index=3, kind="in", seq=1, time_ns=10, event_time_ns=9,
                                   body=b"batch"), decode_record, LogFormatError),
    Format("slice", _slice_bytes(), read_slice, LogFormatError),
    Format("sealed", seal_strategy("x = 1\n", {"a": 1}, strategy="s", data_key=KEY),
           read_sealed_header, DataError),
    Format("sealed_inner", cbor2.dumps({"module": "x = 1\n", "parameters": {"a": 1.5}},
                                       canonical=True), _inner, UnsealError, opaque=True),
    Format("user_data", cbor2.dumps({"checkpoint": b"note"}, canonical=True), _user_data,
           DataError),
]  # fmt: skip
IDS = [f.name for f in FORMATS]


def _refused(fmt: Format, data: bytes, *needles: str) -> str:
    with pytest.raises(fmt.error) as exc:
        fmt.decode(data)
    message = str(exc.value)
    if isinstance(exc.value, FrameError):
        assert exc.value.code == "garbage"
        assert not exc.value.fatal  # one bad frame; the connection stays usable
    if not fmt.opaque:
        for needle in needles:
            assert needle in message, message
        for bad in ("\n", "b'", "Traceback"):
            assert bad not in message, message
    return message


def test_every_good_encoding_decodes() -> None:
    for fmt in FORMATS:
        if fmt.name == "user_data":  # the CBOR layer hands back the note, parsed later
            assert fmt.decode(fmt.good) == b"note"
            continue
        fmt.decode(fmt.good)


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
@pytest.mark.parametrize("junk", [b"\x00", b"\xff", b"junk", b"\xa0", b"\xf6\xf6"])
def test_valid_plus_junk_is_refused(fmt: Format, junk: bytes) -> None:
    _refused(fmt, fmt.good + junk, "trailing bytes", f"at offset {len(fmt.good)}")


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_valid_twice_is_refused(fmt: Format) -> None:
    _refused(fmt, fmt.good + fmt.good, "trailing bytes")


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_non_shortest_length_is_refused(fmt: Format) -> None:
    head = fmt.good[0]
    assert head >> 5 == 5  # each format is one map
    assert head & 0x1F < 24  # of a few pairs
    widened = bytes([0xB8, head & 0x1F]) + fmt.good[1:]
    _refused(fmt, widened, "not in its shortest form", "at offset 0")


WITH_VERSION = [f for f in FORMATS if "v" in cbor2.loads(f.good)]


def _version_entry(fmt: Format) -> bytes:
    """The encoded ``"v": N`` entry of a format's good encoding (N below 24: one byte)."""
    version = cbor2.loads(fmt.good)["v"]
    assert 0 <= version < 24
    return b"\x61v" + bytes([version])


@pytest.mark.parametrize("fmt", WITH_VERSION, ids=lambda f: f.name)
def test_non_shortest_integer_is_refused(fmt: Format) -> None:
    version = _version_entry(fmt)
    at = fmt.good.index(version) + 2
    widened = fmt.good[:at] + b"\x18" + version[2:] + fmt.good[at + 1 :]
    _refused(fmt, widened, f"integer or length {version[2]} not in its shortest form",
             f"at offset {at}")


@pytest.mark.parametrize("fmt", WITH_VERSION, ids=lambda f: f.name)
def test_duplicate_key_is_refused(fmt: Format) -> None:
    version = _version_entry(fmt)
    at = fmt.good.index(version) + 3
    doubled = bytes([fmt.good[0] + 1]) + fmt.good[1:at] + version + fmt.good[at:]
    _refused(fmt, doubled, 'duplicate map key "v"', f"at offset {at}")


@pytest.mark.parametrize("fmt", [f for f in FORMATS if len(cbor2.loads(f.good)) > 1],
                         ids=lambda f: f.name)  # fmt: skip
def test_keys_out_of_canonical_order_are_refused(fmt: Format) -> None:
    doc = cbor2.loads(fmt.good)
    reordered = cbor2.dumps(dict(reversed(list(doc.items()))))
    assert reordered != fmt.good
    _refused(fmt, reordered, "out of canonical order")


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_indefinite_lengths_are_refused(fmt: Format) -> None:
    _refused(fmt, b"\xbf" + fmt.good[1:] + b"\xff", "indefinite-length map", "at offset 0")


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_nesting_past_the_format_bound_is_refused(fmt: Format) -> None:
    doc = cbor2.loads(fmt.good)
    key = next(iter(doc))
    deep: object = 0
    for _ in range(20):
        deep = [deep]
    doc[key] = deep
    _refused(fmt, cbor2.dumps(doc, canonical=True), "nesting deeper than")


@pytest.mark.parametrize(
    ("fmt", "module", "name"),
    [
        (FORMATS[0], "zcbench.strategy._wire", "MAX_WIRE_BYTES"),
        (FORMATS[1], "zcbench.strategy._wire", "MAX_WIRE_BYTES"),
        (FORMATS[2], "zcbench.channel._frames", "MAX_FRAME"),
        (FORMATS[3], "zcbench.auditlog.records", "MAX_RECORD_BYTES"),
        (FORMATS[4], "zcbench.auditlog.slice", "MAX_SLICE_BYTES"),
    ],
    ids=lambda x: x.name if isinstance(x, Format) else "",
)
def test_size_bound_is_enforced(
    fmt: Format, module: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(f"{module}.{name}", len(fmt.good) - 1)
    _refused(fmt, fmt.good, f"exceeds the limit of {len(fmt.good) - 1}")
    monkeypatch.setattr(f"{module}.{name}", len(fmt.good))
    fmt.decode(fmt.good) if fmt.name != "user_data" else None


def test_floats_only_where_the_format_has_them() -> None:
    # a strategy parameter may be a float (the sealed inner payload); a batch field may not
    doc = cbor2.loads(FORMATS[0].good)
    doc["n"] = 3.0
    _refused(FORMATS[0], cbor2.dumps(doc, canonical=True), "float", "at offset")
    opened = _inner(FORMATS[6].good)
    assert opened.parameters == {"a": 1.5}  # type: ignore[attr-defined]
    wide = FORMATS[6].good.replace(b"\xf9\x3e\x00", b"\xfb\x3f\xf8\x00\x00\x00\x00\x00\x00")
    assert wide != FORMATS[6].good
    with pytest.raises(UnsealError):
        _inner(wide)


def test_version_true_is_not_version_1() -> None:
    for fmt in (FORMATS[0], FORMATS[1]):
        doc = cbor2.loads(fmt.good)
        doc["v"] = True
        _refused(fmt, cbor2.dumps(doc, canonical=True), "")


def test_the_document_reader_stays_strict_but_not_canonical() -> None:
    with pytest.raises(AttestationError, match="trailing bytes") as exc:
        parse_document(DOCUMENT + b"\x00")
    assert exc.value.check == "decode"
    parse_document(DOCUMENT)  # a real NSM document, with its 8-byte timestamp, still parses


# --- properties: these fail on any decoder that accepts valid + junk ------------------------

LIVE: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any], type[Exception]]] = {
    "batch": (encode_batch, functools.partial(decode_batch, seq=4), DataError),
    "signals": (encode_signals, decode_signals, DataError),
    "frame": (lambda m: encode_frame(m)[4:], decode_body, FrameError),
    "record": (lambda r: r, decode_record, LogFormatError),
}

i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def _live_value(draw: st.DrawFn, name: str) -> Any:
    if name == "batch":
        n = draw(st.integers(0, 12))
        frame = pl.DataFrame(
            {"ts": draw(st.lists(i64, min_size=n, max_size=n)),
             "symbol": draw(st.lists(st.text(max_size=14), min_size=n, max_size=n)),
             "size": draw(st.lists(st.none() | i64, min_size=n, max_size=n))},
            schema={"ts": pl.Int64, "symbol": pl.String, "size": pl.Int64},
        )  # fmt: skip
        return Batch(seq=draw(st.integers(0, 2**40)), events=frame)
    if name == "signals":
        signal = st.builds(Signal, symbol=st.text(min_size=1, max_size=5),
                           side=st.sampled_from(["buy", "sell"]),
                           quantity=st.integers(1, 2**40),
                           limit_price=st.none() | st.integers(1, 2**40))  # fmt: skip
        return draw(st.lists(signal, max_size=4))
    if name == "frame":
        return Message("ingest", {"seq": draw(st.integers(0, 2**64 - 1)),
                                  "batch": draw(st.binary(max_size=40))})  # fmt: skip
    return encode_record(index=draw(st.integers(0, 2**64 - 1)), kind="in",
                         seq=draw(st.integers(0, 2**64 - 1)), time_ns=draw(i64),
                         event_time_ns=draw(st.none() | i64), body=draw(st.binary(max_size=40)))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(LIVE)), st.data(), st.binary(min_size=1, max_size=16))
def test_property_valid_plus_any_junk_is_refused(name: str, data: st.DataObject,
                                                 junk: bytes) -> None:
    encode, decode, error = LIVE[name]
    good = encode(data.draw(_live_value(name)))
    decode(good)
    with pytest.raises(error, match="trailing bytes"):
        decode(good + junk)


def _reencode(name: str, value: Any) -> bytes:
    if name == "record":
        return encode_record(index=value.index, kind=value.kind, seq=value.seq,
                             time_ns=value.time_ns, event_time_ns=value.event_time_ns,
                             body=value.body)  # fmt: skip
    encode = LIVE[name][0]
    return encode(value)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(LIVE)), st.data())
def test_property_whatever_decodes_is_its_one_encoding(name: str, data: st.DataObject) -> None:
    encode, decode, error = LIVE[name]
    raw = bytearray(encode(data.draw(_live_value(name))))
    action = data.draw(st.sampled_from(["flip", "truncate", "insert", "append"]))
    if action == "flip":
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    elif action == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif action == "insert":
        at = data.draw(st.integers(0, len(raw)))
        raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    else:
        raw += data.draw(st.binary(min_size=1, max_size=8))
    try:
        value = decode(bytes(raw))
    except error:
        return
    # accepted: then these bytes are exactly the canonical encoding of what they decoded to
    assert _reencode(name, value) == bytes(raw)


# --- corruption probes: every truncation, every bit flip ------------------------------------


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.name not in ("sealed", "sealed_inner")],
                         ids=lambda f: f.name)  # fmt: skip
def test_corruption_probes(fmt: Format) -> None:
    good = fmt.good
    for cut in range(len(good)):
        with pytest.raises(fmt.error):
            fmt.decode(good[:cut])
    decoded = cbor2.loads(good)
    for i in range(len(good)):
        for bit in range(8):
            raw = bytearray(good)
            raw[i] ^= 1 << bit
            try:
                fmt.decode(bytes(raw))
            except fmt.error:
                continue
            except DataError:
                continue  # user_data's note parser: its own DataError, past the CBOR layer
            # accepted: a different value whose canonical encoding these bytes are
            again = cbor2.loads(bytes(raw))
            assert again != decoded
            assert cbor2.dumps(again, canonical=True) == bytes(raw)
