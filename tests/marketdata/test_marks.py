"""One market-price rule: the live execution layer, the backtest and the tear sheet value the
same events at the same marks, batch by batch (zcbench.marketdata._marks)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.backtest._accounting import FillModel, book
from zcbench.evidence.tearsheet import marks_by_batch
from zcbench.host.execution import ExecutionLayer
from zcbench.marketdata import last_marks, marks

_PRICES = ("price", "bid", "ask", "close")


def _three_views(events: pl.DataFrame, ends: list[int]) -> list[dict[str, dict[str, int]]]:
    """Each symbol's mark after each batch (rows up to ``ends[k]``), as the execution layer, the
    backtest's ledger and the tear sheet see it."""
    ex = ExecutionLayer()
    live: dict[str, dict[str, int]] = {}
    start = 0
    for k, end in enumerate(ends):
        ex.on_market(events.slice(start, end - start))
        live[str(k)] = dict(ex.last_price)
        start = end
    no_signals = pl.DataFrame(schema={"seq": pl.Int64, "idx": pl.Int64, "symbol": pl.String,
                                      "side": pl.String, "quantity": pl.Int64,
                                      "limit_price": pl.Int64, "end_row": pl.Int64})
    ledger = book(events, no_signals, np.array(ends, dtype=np.int64), FillModel(), 0)
    backtest: dict[str, dict[str, int]] = {}
    for k, end in enumerate(ends):
        seen = {}
        for symbol, (rows, px) in ledger.marks.items():
            j = int(np.searchsorted(rows, end, side="left")) - 1
            if j >= 0:
                seen[symbol] = int(px[j])
        backtest[str(k)] = seen
    seq = np.repeat(np.arange(len(ends)), np.diff([0, *ends]))
    sheet_marks = marks_by_batch(events.with_columns(pl.Series("seq", seq)))
    sheet: dict[str, dict[str, int]] = {}
    last: dict[str, int] = {}
    for k in range(len(ends)):
        rows = sheet_marks.filter(pl.col("seq") == k)
        last.update(dict(zip(rows["symbol"].to_list(), rows["price_ticks"].to_list(),
                             strict=True)))
        sheet[str(k)] = dict(last)
    return [live, backtest, sheet]


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    schema = {"ts": pl.Int64, "symbol": pl.String, "kind": pl.String,
              **{c: pl.Int64 for c in (*_PRICES, "open")}}
    return pl.DataFrame(rows, schema=schema)


def test_a_quote_that_carries_a_price_is_marked_alike_everywhere() -> None:
    # a feed that repeats the last trade's price on its quotes: the live run marked such a
    # quote at that price, the backtest at its mid; one rule now (the trade price first)
    events = _frame([
        {"ts": 1, "symbol": "A", "kind": "trade", "price": 100},
        {"ts": 2, "symbol": "A", "kind": "quote", "price": 100, "bid": 110, "ask": 112},
        {"ts": 3, "symbol": "B", "kind": "bar", "price": 50, "open": 49, "close": 50},
    ])
    live, backtest, sheet = _three_views(events, [1, 3])
    assert live == backtest == sheet
    assert live["1"] == {"A": 100, "B": 50}


def test_a_batch_without_a_symbols_price_keeps_its_last_mark() -> None:
    events = _frame([
        {"ts": 1, "symbol": "A", "kind": "trade", "price": 100},
        {"ts": 2, "symbol": "B", "kind": "quote", "bid": 10, "ask": 13},
        {"ts": 3, "symbol": "B", "kind": "trade", "price": 12},
        {"ts": 4, "symbol": "A", "kind": "quote", "bid": 101, "ask": 104},
    ])
    live, backtest, sheet = _three_views(events, [1, 2, 3, 4])
    assert live == backtest == sheet
    assert [live[k] for k in "0123"] == [
        {"A": 100}, {"A": 100, "B": 11}, {"A": 100, "B": 12}, {"A": 102, "B": 12}]


def test_one_sided_and_non_positive_fields_give_no_mark() -> None:
    frame = pl.DataFrame({"symbol": ["A", "A", "B", "C"], "price": [None, 0, None, None],
                          "bid": [None, None, 7, None], "ask": [None, None, None, None],
                          "close": [None, None, None, 5]},
                         schema_overrides={c: pl.Int64 for c in _PRICES})
    assert marks(frame).to_list() == [None, None, None, 5]
    assert last_marks(frame) == {"C": 5}
    assert last_marks(frame.drop("close")) == {}


_ROW = st.fixed_dictionaries({
    "symbol": st.sampled_from(["A", "B", "C"]),
    "kind": st.sampled_from(["trade", "quote", "bar"]),
    "price": st.one_of(st.none(), st.integers(1, 10**9)),
    "bid": st.one_of(st.none(), st.integers(1, 10**9)),
    "ask": st.one_of(st.none(), st.integers(1, 10**9)),
    "close": st.one_of(st.none(), st.integers(1, 10**9)),
})


@settings(max_examples=60, deadline=None)
@given(st.lists(_ROW, min_size=1, max_size=30), st.data())
def test_the_three_consumers_agree_on_any_events(rows: list[dict[str, Any]],
                                                  data: st.DataObject) -> None:
    events = _frame([{**r, "ts": i} for i, r in enumerate(rows)])
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(rows)), max_size=5))) | {len(rows)})
    live, backtest, sheet = _three_views(events, cuts)
    assert live == backtest == sheet


def test_a_long_frame_and_a_batch_give_each_symbols_last_mark_alike() -> None:
    # long frames (the execution layer's folded batches) take a vectorised path, batches a
    # walk: both are the same rule
    rng = np.random.default_rng(11)
    n = 5_000
    nulls = rng.random((4, n)) < 0.3
    values = rng.integers(-2, 10**6, (4, n))
    frame = pl.DataFrame({
        "symbol": pl.Series([None if k == 7 else f"S{k}" for k in rng.integers(0, 8, n)]),
        **{c: pl.Series([None if nulls[j, i] else int(values[j, i]) for i in range(n)],
                        dtype=pl.Int64) for j, c in enumerate(_PRICES)},
    })
    expected: dict[str, int] = {}
    for symbol, mark in zip(frame["symbol"].to_list(), marks(frame).to_list(), strict=True):
        if symbol is not None and mark is not None:
            expected[symbol] = mark
    assert last_marks(frame) == expected
    assert last_marks(frame.slice(n - 1_000)) == {
        s: m for s, m in zip(frame["symbol"][n - 1_000:].to_list(),
                             marks(frame.slice(n - 1_000)).to_list(), strict=True)
        if s is not None and m is not None}
    assert None not in last_marks(frame.slice(0, 50))


def test_a_batch_with_some_of_the_mark_fields_is_walked_by_the_same_rule() -> None:
    # the walk reads only the fields the frame has, as the vectorised rule does
    rng = np.random.default_rng(5)
    n = 400
    frame = pl.DataFrame({
        "symbol": pl.Series([None if k == 3 else f"S{k}" for k in rng.integers(0, 4, n)]),
        **{c: pl.Series([None if rng.random() < 0.4 else int(v)
                         for v in rng.integers(-3, 10**6, n)], dtype=pl.Int64)
           for c in _PRICES},
    })
    for fields in [("close",), ("price",), ("bid", "ask"), ("price", "close"),
                   ("bid", "ask", "close")]:
        part = frame.select("symbol", *fields)
        expected: dict[str, int] = {}
        for symbol, mark in zip(part["symbol"].to_list(), marks(part).to_list(), strict=True):
            if symbol is not None and mark is not None:
                expected[symbol] = mark
        assert last_marks(part) == expected, fields
    assert last_marks(frame.select("symbol")) == last_marks(frame.select("symbol", "bid")) == {}
