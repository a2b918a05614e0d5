"""The FIX 4.4 codec: round trips, every corruption refused with its reason, the framer."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.venue.fix.codec import (
    MAX_MESSAGE,
    Framer,
    GarbledMessage,
    InvalidMessage,
    decode,
    encode,
    format_price,
    parse_price,
)
from zcbench.venue.fix.messages import (
    execution_fields,
    execution_from_fix,
    order_fields,
    order_from_fix,
)
from zcbench.venue.orders import Execution, Order

HDR: list[tuple[int, str | int]] = [(49, "A"), (56, "B"), (34, 7), (52, "20240102-09:00:00.000")]


def _order() -> bytes:
    o = Order("run-1-5-0", "AAA", "buy", 10, "limit", "GTC", limit_price=1_012_500,
              log_index=5, signal_hash="ab" * 32)
    return encode("D", [*HDR, *order_fields(o, market_ns=1_704_186_000_000_000_000)])


def test_known_bytes_and_checksum() -> None:
    raw = encode("0", HDR)
    assert raw.startswith(b"8=FIX.4.4\x019=")
    body = raw[raw.index(b"35="): raw.index(b"10=")]
    assert int(raw.split(b"\x01")[1][2:]) == len(body)
    assert raw[-4:-1] == f"{sum(raw[:-7]) % 256:03d}".encode()
    msg = decode(raw)
    assert (msg.msg_type, msg.seq, msg[49]) == ("0", 7, "A")


def test_order_round_trip() -> None:
    msg = decode(_order())
    o = order_from_fix(msg)
    assert (o.cl_ord_id, o.limit_price, o.tif, o.log_index, o.signal_hash) == (
        "run-1-5-0", 1_012_500, "GTC", 5, "ab" * 32)


def test_execution_round_trip() -> None:
    e = Execution("SE3", "SO1", "c1", "trade", "partially_filled", "AAA", "sell", 10,
                  last_qty=4, last_px=1_000_001, cum_qty=4, leaves_qty=6,
                  cum_notional=4_000_004, ts=1_704_186_000_123_456_789, log_index=9,
                  signal_hash="cd" * 32)
    t, fields = execution_fields(e)
    assert execution_from_fix(decode(encode(t, [*HDR, *fields]))) == e


@pytest.mark.parametrize(
    ("mutate", "error", "reason"),
    [
        (lambda r: r.replace(b"FIX.4.4", b"FIX.4.2", 1), GarbledMessage, "8=FIX.4.4"),
        (lambda r: r[:-4] + b"000\x01" if r[-4:-1] != b"000" else r[:-4] + b"001\x01",
         GarbledMessage, "CheckSum"),
        (lambda r: r.replace(b"\x019=", b"\x019=1", 1), GarbledMessage, "BodyLength"),
        (lambda r: r[:-1], GarbledMessage, "BodyLength"),
        (lambda r: r + b"x", GarbledMessage, "BodyLength"),
    ],
)
def test_frame_corruptions(mutate: object, error: type, reason: str) -> None:
    with pytest.raises(error, match=reason):
        decode(mutate(_order()))  # type: ignore[operator]


def _with(fields: list[tuple[int, str | int]], msg_type: str = "D") -> bytes:
    return encode(msg_type, fields)


def test_content_corruptions() -> None:
    good = decode(_order())
    fields = list(good.fields)
    with pytest.raises(InvalidMessage, match="required tag 11") as info:
        decode(_with([f for f in fields if f[0] != 11]))
    assert (info.value.ref_seq, info.value.ref_tag) == (7, 11)
    with pytest.raises(InvalidMessage, match="appears twice"):
        decode(_with([*fields, (11, "again")]))
    with pytest.raises(InvalidMessage, match="not defined for MsgType D"):
        decode(_with([*fields, (9999, "x")]))
    with pytest.raises(InvalidMessage, match="not supported"):
        decode(_with(HDR, "Z"))
    with pytest.raises(InvalidMessage, match="tag 34"):
        decode(_with([(49, "A"), (56, "B"), (34, "07"), (52, "t")], "0"))
    with pytest.raises(InvalidMessage, match="finer than a tick"):
        parse_price("1.00001")
    with pytest.raises(InvalidMessage, match="decimal price"):
        parse_price("1e5")


def test_size_bound() -> None:
    with pytest.raises(GarbledMessage, match="over"):
        decode(b"8=FIX.4.4\x01" + b"x" * MAX_MESSAGE)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**15))
def test_prices_exact(ticks: int) -> None:
    assert parse_price(format_price(ticks)) == ticks


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 5))
def test_framer_survives_garbage(noise: bytes, where: int) -> None:
    raws = [_order(), encode("0", HDR)]
    stream = raws[0] + noise + raws[1]
    framer = Framer()
    got: list[bytes | GarbledMessage] = []
    step = where + 1
    for i in range(0, len(stream), step):
        got += framer.feed(stream[i : i + step])
    whole = [g for g in got if isinstance(g, bytes)]
    assert raws[0] == whole[0]
    if b"8=FIX" not in noise:
        assert raws[1] in whole  # the message after the noise is found again
    for g in got:  # every whole item either decodes or is named as damaged
        if isinstance(g, bytes):
            with contextlib.suppress(GarbledMessage, InvalidMessage):
                decode(g)
