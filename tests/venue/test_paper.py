"""The paper venue: order types, time in force, cancel/replace, quoted size, determinism."""

from __future__ import annotations

import json

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.errors import DataError
from zcbench.strategy import Signal
from zcbench.venue import Cancel, Execution, Order, PaperVenue, Replace, order_from_signal

DAY = 86_400 * 1_000_000_000
T0 = 1_704_186_000 * 1_000_000_000


def quote(ts: int, bid: int, ask: int, bid_size: int = 100, ask_size: int = 100, sym: str = "AAA"):
    return pl.DataFrame(
        {
            "ts": [ts],
            "symbol": [sym],
            "kind": ["quote"],
            "bid": [bid],
            "ask": [ask],
            "bid_size": [bid_size],
            "ask_size": [ask_size],
        }
    )


def trade(ts: int, price: int, size: int, sym: str = "AAA") -> pl.DataFrame:
    return pl.DataFrame(
        {"ts": [ts], "symbol": [sym], "kind": ["trade"], "price": [price], "size": [size]}
    )


def order(cid: str, side: str = "buy", qty: int = 10, **kw: object) -> Order:
    return Order(cl_ord_id=cid, symbol=kw.pop("symbol", "AAA"), side=side, quantity=qty, **kw)  # type: ignore[arg-type]


def kinds(execs: list[Execution]) -> list[tuple[str, str, int]]:
    return [(e.exec_type, e.ord_status, e.last_qty) for e in execs]


def test_market_ioc_partial_against_quoted_size() -> None:
    v = PaperVenue()
    v.on_market(quote(T0, 99, 101, ask_size=30))
    out = v.submit(order("a", qty=50))
    assert kinds(out) == [
        ("new", "new", 0),
        ("trade", "partially_filled", 30),
        ("canceled", "canceled", 0),
    ]
    assert out[1].last_px == 101
    assert out[2].cum_qty == 30
    assert out[2].leaves_qty == 0
    assert v.positions == {"AAA": 30}
    # the liquidity is used up until the next event of the symbol
    assert kinds(v.submit(order("b", qty=5)))[1:] == [("canceled", "canceled", 0)]


def test_limit_gtc_rests_then_fills_partly_then_fully() -> None:
    v = PaperVenue()
    v.on_market(quote(T0, 99, 101))
    out = v.submit(order("a", qty=50, ord_type="limit", limit_price=100, tif="GTC"))
    assert kinds(out) == [("new", "new", 0)]
    assert [o.order.cl_ord_id for o in v.open_orders()] == ["a"]
    out = v.on_market(quote(T0 + 1, 98, 100, ask_size=20))
    assert kinds(out) == [("trade", "partially_filled", 20)]
    assert out[0].last_px == 100
    out = v.on_market(trade(T0 + 2, 99, 1_000))
    assert kinds(out) == [("trade", "filled", 30)]
    assert out[0].cum_qty == 50
    assert out[0].cum_notional == 20 * 100 + 30 * 99
    assert v.open_orders() == []


def test_fok_all_or_nothing() -> None:
    v = PaperVenue()
    v.on_market(quote(T0, 99, 101, ask_size=30))
    assert kinds(v.submit(order("a", qty=31, tif="FOK"))) == [
        ("new", "new", 0),
        ("canceled", "canceled", 0),
    ]
    assert kinds(v.submit(order("b", qty=30, tif="FOK"))) == [
        ("new", "new", 0),
        ("trade", "filled", 30),
    ]


def test_stop_and_stop_limit_trigger() -> None:
    v = PaperVenue()
    v.on_market(quote(T0, 99, 101))
    assert kinds(v.submit(order("s", qty=5, ord_type="stop", stop_price=105, tif="GTC"))) == [
        ("new", "new", 0)
    ]
    assert v.on_market(quote(T0 + 1, 102, 104)) == []
    out = v.on_market(quote(T0 + 2, 104, 106))
    assert kinds(out) == [("trade", "filled", 5)]
    assert out[0].last_px == 106
    # a sell stop-limit: triggers at bid <= 95, then fills only at 94 or better
    v.submit(
        order("sl", "sell", 5, ord_type="stop_limit", stop_price=95, limit_price=94, tif="DAY")
    )
    assert v.on_market(quote(T0 + 3, 93, 96)) == []  # triggered, but bid 93 is below the limit
    out = v.on_market(quote(T0 + 4, 94, 96))
    assert kinds(out) == [("trade", "filled", 5)]
    assert out[0].last_px == 94


def test_day_expires_at_the_next_utc_day() -> None:
    v = PaperVenue()
    v.on_market(quote(T0, 99, 101))
    v.submit(order("d", qty=5, ord_type="limit", limit_price=90, tif="DAY"))
    v.submit(order("g", qty=5, ord_type="limit", limit_price=90, tif="GTC"))
    assert v.on_market(quote(T0 + 1000, 99, 101)) == []
    day2 = (T0 // DAY + 1) * DAY
    out = v.on_market(quote(day2, 99, 101))
    assert kinds(out) == [("expired", "expired", 0)]
    assert out[0].cl_ord_id == "d"
    assert [o.order.cl_ord_id for o in v.open_orders()] == ["g"]


def test_cancel_and_replace() -> None:
    v = PaperVenue()
    v.on_market(quote(T0, 99, 101, ask_size=10))
    v.submit(order("a", qty=50, ord_type="limit", limit_price=101, tif="GTC"))  # 10 fill
    out = v.replace(Replace("a2", "a", quantity=40, limit_price=100))
    assert kinds(out) == [("replaced", "partially_filled", 0)]
    assert out[0].orig_cl_ord_id == "a"
    assert out[0].order_id == "PO1"
    assert out[0].leaves_qty == 30
    assert kinds(v.replace(Replace("a3", "a2", quantity=10))) == [
        ("cancel_rejected", "partially_filled", 0)
    ]
    out = v.cancel(Cancel("c1", "a2"))
    assert kinds(out) == [("canceled", "canceled", 0)]
    assert out[0].cum_qty == 10
    bad = v.cancel(Cancel("c2", "a2"))
    assert bad[0].exec_type == "cancel_rejected"
    assert "no open order a2" in bad[0].text
    assert "unknown order zz" in v.cancel(Cancel("c3", "zz"))[0].text


def test_rejects_named() -> None:
    v = PaperVenue()
    assert v.submit(order("a"))[0].text == "no market yet for AAA"
    v.on_market(quote(T0, 99, 101))
    out = v.submit(order("a"))
    assert out[0].exec_type == "rejected"
    assert "repeated ClOrdID a" in out[0].text


def test_order_validation() -> None:
    with pytest.raises(DataError, match="needs limit price"):
        order("x", ord_type="limit")
    with pytest.raises(DataError, match="DAY or GTC"):
        order("x", ord_type="stop", stop_price=5, tif="IOC")
    with pytest.raises(DataError, match="ClOrdID"):
        order("bad id with spaces")
    with pytest.raises(DataError, match="time in force"):
        order("x", tif="GTD")


def test_order_from_signal_hints() -> None:
    s = Signal("AAA", "buy", 3, 100, hints=(("tif", "GTC"),))
    o = order_from_signal(s, cl_ord_id="r:7:0", log_index=7, signal_pos=0)
    assert (o.ord_type, o.tif, o.limit_price, o.log_index) == ("limit", "GTC", 100, 7)
    assert len(o.signal_hash) == 64
    hints = (("order_type", "stop"), ("stop_price", 90), ("tif", "DAY"))
    stop = Signal("AAA", "sell", 3, hints=hints)
    assert order_from_signal(stop, cl_ord_id="c", log_index=1, signal_pos=1).stop_price == 90
    plain = order_from_signal(Signal("AAA", "buy", 1), cl_ord_id="m", log_index=0, signal_pos=0)
    assert plain.ord_type == "market"


def test_execution_json_round_trip() -> None:
    v = PaperVenue()
    v.on_market(quote(T0, 99, 101))
    for e in v.submit(order("a")):
        assert Execution.from_json(json.loads(json.dumps(e.to_json()))) == e
    with pytest.raises(DataError, match="unknown fields"):
        Execution.from_json({**e.to_json(), "extra": 1})


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("q"), st.integers(90, 110), st.integers(1, 5), st.integers(0, 60)),
        st.tuples(st.just("t"), st.integers(90, 110), st.integers(0, 60), st.just(0)),
        st.tuples(st.just("o"), st.integers(0, 5), st.integers(1, 80), st.integers(90, 110)),
        st.tuples(st.just("c"), st.integers(0, 30), st.just(0), st.just(0)),
        st.tuples(st.just("r"), st.integers(0, 30), st.integers(1, 80), st.integers(90, 110)),
    ),
    max_size=60,
)


def _play(ops: list[tuple[str, int, int, int]]) -> tuple[list[dict[str, object]], PaperVenue]:
    v = PaperVenue()
    out: list[Execution] = []
    ts = T0
    kinds_ = [("market", "IOC"), ("limit", "GTC"), ("limit", "DAY"), ("limit", "FOK"),
              ("stop", "GTC"), ("stop_limit", "GTC")]
    for n, (op, a, b, c) in enumerate(ops, start=1):
        ts += DAY // 7
        if op == "q":
            out += v.on_market(quote(ts, a - b, a + b, ask_size=c, bid_size=c))
        elif op == "t":
            out += v.on_market(trade(ts, a, b))
        elif op == "o":
            ord_type, tif = kinds_[a]
            kw: dict[str, object] = {"ord_type": ord_type, "tif": tif}
            if ord_type in ("limit", "stop_limit"):
                kw["limit_price"] = c
            if ord_type in ("stop", "stop_limit"):
                kw["stop_price"] = c
            out += v.submit(order(f"o{n}", "buy" if n % 2 else "sell", b, **kw))
        elif op == "c":
            out += v.cancel(Cancel(f"c{n}", f"o{a}"))
        else:
            out += v.replace(Replace(f"o{n}", f"o{a}", quantity=b))
    return [e.to_json() for e in out], v


@settings(max_examples=60, deadline=None)
@given(_ops)
def test_deterministic_and_consistent(ops: list[tuple[str, int, int, int]]) -> None:
    first, venue = _play(ops)
    again, _ = _play(ops)
    assert json.dumps(first) == json.dumps(again)  # same inputs, same executions, byte for byte
    # never overfilled, fills add up, positions are the sum of the fills, exec ids unique
    assert len({e["exec_id"] for e in first}) == len(first)
    cum: dict[str, int] = {}
    pos: dict[str, int] = {}
    for e in first:
        if e["exec_type"] == "trade":
            oid = str(e["order_id"])
            cum[oid] = cum.get(oid, 0) + int(e["last_qty"])  # type: ignore[call-overload]
            assert cum[oid] == e["cum_qty"] <= int(e["order_qty"])  # type: ignore[call-overload]
            sign = 1 if e["side"] == "buy" else -1
            pos[str(e["symbol"])] = pos.get(str(e["symbol"]), 0) + sign * int(e["last_qty"])  # type: ignore[call-overload]
    assert {k: q for k, q in pos.items() if q} == {k: q for k, q in venue.positions.items() if q}


def test_execution_layer_through_the_paper_venue(tmp_path: object) -> None:
    from zcbench.host.execution import ExecutionLayer, RiskLimits, VerifiedSignals

    ex = ExecutionLayer(RiskLimits(max_position=100), venue=PaperVenue(), order_prefix="run-1")
    ex.on_market(quote(T0, 99, 101, ask_size=30))
    signals = (
        Signal("AAA", "buy", 50),  # market IOC: 30 of 50
        Signal("AAA", "buy", 10, 100, hints=(("tif", "GTC"),)),  # rests
        Signal("AAA", "buy", 500),  # over the position limit
    )
    results = ex.act(VerifiedSignals(0, 2, 3, signals), now_ns=5)
    assert [r.status for r in results] == ["partially_filled", "resting", "rejected"]
    assert ex.positions == {"AAA": 30}
    ex.on_market(quote(T0 + 1, 98, 100, ask_size=100))  # the resting order fills
    ex.act(VerifiedSignals(1, 4, 5, ()), now_ns=6)
    assert ex.positions == {"AAA": 40}
    assert ex.cash == -(30 * 101 + 10 * 100)
    j = ex.journal()
    assert j["event"].to_list() == [
        "order", "ack", "fill", "cancel", "order", "ack", "order", "reject", "fill",
    ]
    # a ClOrdID names the signal by its batch and position; log_index locates its OUT record
    assert j["cl_ord_id"].to_list()[:2] == ["run-1-0-0", "run-1-0-0"]
    assert j.filter(pl.col("event") == "fill")["log_index"].to_list() == [2, 2]
    assert j.filter(pl.col("event") == "fill")["exec_id"].to_list() == ["PE2", "PE5"]


def test_many_frames_without_orders_stay_bounded_and_price_right() -> None:
    v = PaperVenue()
    for i in range(600):
        v.on_market(quote(T0 + i, 99 + i % 3, 101 + i % 3, sym="AAA" if i % 2 else "BBB"))
    assert len(v._pending) < 256
    out = v.submit(order("a", qty=1))
    assert out[1].last_px == 101 + 599 % 3  # the last AAA quote's ask


def test_backtest_batches_fill_through_the_venue_as_the_live_layer_does() -> None:
    from zcbench.backtest import prepare, replay
    from zcbench.examples.order_flow import OrderFlowImbalance, OrderFlowParams
    from zcbench.host.execution import ExecutionLayer, RiskLimits, VerifiedSignals
    from zcbench.marketdata import BatchSpec, SyntheticConfig, generate_ticks
    from zcbench.venue import simulate

    events = generate_ticks(SyntheticConfig(duration_s=0.5, rate=4000), seed=5)
    strategy = OrderFlowImbalance(OrderFlowParams())
    data = prepare(events, strategy.fields(), BatchSpec(count=100))
    per_batch, _ = replay(strategy, data)
    signals = {seq: s for seq, s in enumerate(per_batch) if s}
    assert signals
    ends = data.ends.tolist()
    backtest = simulate(data.events, ends, signals, prefix="run-x")
    # the live execution layer, batch by batch, with limits that refuse nothing
    layer = ExecutionLayer(RiskLimits(max_position=10**9, max_notional=10**18,
                                      max_orders_per_s=10**6, price_collar_bps=10**6),
                           venue=PaperVenue(), order_prefix="run-x")
    start = 0
    for seq, end in enumerate(ends):
        layer.on_market(data.events.slice(start, end - start))
        start = end
        layer.act(VerifiedSignals(seq, seq, seq + 1, tuple(signals.get(seq, ()))), now_ns=seq)
    fills = layer.journal().filter(pl.col("exec_id") != "")
    assert fills["exec_id"].to_list() == [e.exec_id for e in backtest]
    assert fills["price_ticks"].to_list() == [e.last_px if e.exec_type == "trade" else None
                                              for e in backtest]


@settings(max_examples=60, deadline=None)
@given(
    symbols=st.lists(st.one_of(st.none(), st.sampled_from([f"S{i}" for i in range(40)])),
                     max_size=400),
    data=st.data(),
)
def test_last_rows_are_each_symbols_last_event(
    symbols: list[str | None], data: st.DataObject
) -> None:
    """What the venue keeps of the events of symbols without resting orders: each symbol's last
    row, whole (nulls included), as a group-by's last row per symbol has it."""
    from zcbench.venue.paper import _last_rows

    n = len(symbols)
    prices = data.draw(st.lists(st.one_of(st.none(), st.integers(1, 99)), min_size=n, max_size=n))
    frame = pl.DataFrame(
        {"ts": list(range(n)), "symbol": symbols, "price": prices},
        schema={"ts": pl.Int64, "symbol": pl.String, "price": pl.Int64},
    )
    expected = frame.group_by("symbol", maintain_order=True).last().rows(named=True)
    got = _last_rows(frame)
    assert [r["ts"] for r in got] == sorted(r["ts"] for r in expected)
    assert sorted(got, key=lambda r: r["ts"]) == sorted(expected, key=lambda r: r["ts"])


def test_carried_orders_rest_and_fill_as_in_the_venue_they_came_from() -> None:
    from zcbench.errors import UsageError

    v = PaperVenue()
    v.on_market(quote(T0, 99, 101))
    v.submit(order("a", qty=50, ord_type="limit", limit_price=100, tif="GTC"))
    v.submit(order("d", qty=5, ord_type="limit", limit_price=90, tif="DAY"))
    v.on_market(quote(T0 + 1, 98, 100, ask_size=20))  # a fills 20 of 50
    left = v.open_orders()
    assert [(o.order.cl_ord_id, o.cum_qty, o.day) for o in left] == [
        ("a", 20, T0 // DAY), ("d", 0, T0 // DAY)]
    # a new venue (a continuing run's) carries them: the next events do what they did here
    later = [trade(T0 + 2, 99, 1_000), quote((T0 // DAY + 1) * DAY, 99, 101)]
    carried = PaperVenue(prefix="Q")
    carried.carry(left)
    assert carried.resting()
    for frame in later:
        went, came = v.on_market(frame), carried.on_market(frame)
        assert kinds(came) == kinds(went)
        assert [(e.cl_ord_id, e.cum_qty, e.cum_notional, e.last_px) for e in came] == [
            (e.cl_ord_id, e.cum_qty, e.cum_notional, e.last_px) for e in went]
    assert carried.open_orders() == v.open_orders() == []
    assert kinds(carried.submit(order("a")))[-1][0] == "rejected"  # its ClOrdID stays used
    # only into a venue that has seen nothing, and only with something left
    with pytest.raises(UsageError):
        carried.carry(left)
    done = PaperVenue()
    with pytest.raises(UsageError):
        done.carry([left[0], left[0]])


def test_a_continuing_venue_numbers_its_ids_after_the_chains() -> None:
    v = PaperVenue()
    v.on_market(quote(T0, 99, 101))
    v.submit(order("a", qty=50, ord_type="limit", limit_price=100, tif="GTC"))
    left = v.open_orders()
    carried = PaperVenue()
    # only ids of its own form count: another prefix, a leading zero, no number are not its
    carried.carry(left, used_ids=["PE7", "PO3", "SE100", "PE012", "PE", "PEx1", "XPE50"])
    carried.on_market(quote(T0 + 1, 98, 101))
    out = carried.submit(order("b", qty=1))
    assert [(e.exec_id, e.order_id) for e in out] == [("PE8", "PO9"), ("PE9", "PO9")]
    again = PaperVenue(first_id=20)  # never numbered back below where it starts
    again.carry([], used_ids=["PE7"])
    again.on_market(quote(T0, 99, 101))
    assert again.submit(order("c", qty=1))[0].exec_id == "PE20"
