"""Loaders: the real dataset, and every kind of bad input named by file, row and column."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from zcbench.marketdata import (
    MarketDataError,
    load_events,
    load_ohlcv,
    sample_daily_path,
    write_events,
)
from zcbench.strategy import EVENT_SCHEMA

HEADER = "Date,Open,High,Low,Close,Volume\n"
GOOD = ["2020-01-02,10.0,11.0,9.5,10.5,100", "2020-01-03,10.5,12.0,10.0,11.25,200"]


def _csv(tmp_path: Path, lines: list[str], header: str = HEADER, name: str = "x.csv") -> Path:
    path = tmp_path / name
    path.write_text(header + "".join(line + "\n" for line in lines))
    return path


def test_sample_dataset_is_the_documented_file() -> None:
    path = sample_daily_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == "233566bb6e8b7f56cd928b9a9e034bf03733d648368d445089b8d5c9d0dd312b"
    bars = load_ohlcv(path)
    assert bars.height == 7983
    assert bars.schema == pl.Schema(EVENT_SCHEMA)
    assert set(bars.get_column("symbol").unique()) == {"MSFT"}
    years = (bars["ts"][-1] - bars["ts"][0]) / (365.25 * 86_400e9)
    assert years > 10
    last = bars.row(-1, named=True)  # 2017-11-10,83.79,84.095,83.23,83.87,19396301
    # MSFT's unit is 0.00001 USD (data/instruments.csv): the sample has five decimals
    assert (last["open"], last["high"], last["low"], last["close"], last["volume"]) == (
        8_379_000,
        8_409_500,
        8_323_000,
        8_387_000,
        19_396_301,
    )
    first = bars.row(0, named=True)  # 1986-03-13,0.0672,0.07533,0.0672,0.07533
    assert (first["high"], first["close"]) == (7_533, 7_533)  # not 0.0753
    row31 = bars.row(30, named=True)  # Open 0.08388999999999999: a double printed for 0.08389
    assert row31["open"] == 8_389
    assert last["price"] == last["close"]
    assert last["size"] == last["volume"]


def test_good_ohlcv_csv_and_parquet_agree(tmp_path: Path) -> None:
    csv = load_ohlcv(_csv(tmp_path, GOOD), symbol="ABC")
    assert csv.get_column("close").to_list() == [105_000, 112_500]
    assert csv.get_column("ts").to_list() == [1_577_923_200 * 10**9, 1_578_009_600 * 10**9]
    frame = pl.read_csv(_csv(tmp_path, GOOD, name="y.csv"))
    frame.write_parquet(tmp_path / "abc_daily.parquet")
    assert load_ohlcv(tmp_path / "abc_daily.parquet").equals(csv)  # symbol from the name


@pytest.mark.parametrize(
    ("lines", "header", "row", "column", "needle"),
    [
        ([g[: g.rindex(",")] for g in GOOD], HEADER[:-8] + "\n", None, "Volume", "missing"),
        ([GOOD[0], "2020-01-03,10.5,12.0"], HEADER, 2, "Low", "missing value"),
        ([GOOD[0], GOOD[1] + ",7"], HEADER, 2, None, "7 fields, the header has 6"),
        ([GOOD[0], "2020-01-03,10.5,abc,10.0,11.25,200"], HEADER, 2, "High", "'abc'"),
        ([GOOD[0], "2020-01-03,10.5,12.0,10.0,NaN,200"], HEADER, 2, "Close", "not a price"),
        ([GOOD[0], "2020-01-03,-1,12.0,10.0,11,200"], HEADER, 2, "Open", "positive"),
        ([GOOD[0], "2020-01-03,10.5,12.0,10.0,11,2.5"], HEADER, 2, "Volume", "integer"),
        ([GOOD[0], "2020-01-03,10.5,12.0,10.0,11,-3"], HEADER, 2, "Volume", "negative"),
        ([GOOD[0], "2020-01-03,10.5,12.0,10.0,,200"], HEADER, 2, "Close", "missing value"),
        ([GOOD[1], GOOD[0]], HEADER, 2, "Date", "strictly increasing"),
        ([GOOD[0], GOOD[0]], HEADER, 2, "Date", "strictly increasing"),
        ([GOOD[0], "2020-13-03,10.5,12.0,10.0,11,200"], HEADER, 2, "Date", "YYYY-MM-DD"),
        ([GOOD[0], "2020-01-03,10.5,10.8,10.0,11,200"], HEADER, 2, "High", "inconsistent"),
    ],
)
def test_bad_ohlcv_is_named(
    tmp_path: Path,
    lines: list[str],
    header: str,
    row: int | None,
    column: str | None,
    needle: str,
) -> None:
    path = _csv(tmp_path, lines, header)
    with pytest.raises(MarketDataError, match=needle) as info:
        load_ohlcv(path, symbol="X")
    err = info.value
    assert (err.source, err.row, err.column) == (str(path), row, column)
    assert str(path) in str(err)
    assert column is None or repr(column) in str(err)
    if row is not None:
        assert f"row {row}" in str(err)


def test_empty_and_headless_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(MarketDataError, match="empty") as info:
        load_ohlcv(empty, symbol="X")
    assert info.value.source == str(empty)
    header_only = _csv(tmp_path, [], name="header.csv")
    with pytest.raises(MarketDataError, match="no data rows"):
        load_ohlcv(header_only, symbol="X")
    with pytest.raises(MarketDataError, match="no such file"):
        load_events(tmp_path / "missing.parquet")
    garbage = tmp_path / "bad.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(MarketDataError, match="cannot be read"):
        load_events(garbage)
    with pytest.raises(MarketDataError, match="unknown file type"):
        load_events(_csv(tmp_path, GOOD, name="x.json"))


EV_HEADER = "ts,symbol,kind,price,size,bid,ask,bid_size,ask_size\n"
EV_GOOD = ["1,A,quote,,,99,101,5,5", "2,A,trade,100,3,,,,", "2,B,trade,50,1,,,,"]


def test_good_event_csv_round_trips_through_parquet(tmp_path: Path) -> None:
    events = load_events(_csv(tmp_path, EV_GOOD, EV_HEADER))
    assert events.schema == pl.Schema(EVENT_SCHEMA)
    assert events.get_column("price").to_list() == [None, 100, 50]
    out = write_events(events, tmp_path / "e.parquet")
    assert load_events(out).equals(events)


@pytest.mark.parametrize(
    ("lines", "header", "row", "column", "needle"),
    [
        (["1,A,5", "2,A,6"], "ts,symbol,price\n", None, "kind", "missing"),
        (EV_GOOD, EV_HEADER.replace("ask_size", "colour"), None, "colour", "not an event"),
        (["1,A,quote,,,99,101,5,5", "x,A,trade,100,3,,,,"], EV_HEADER, 2, "ts", "integer"),
        (["1,A,quote,,,99,101,5,5", "2,A,trade,100.5,3,,,,"], EV_HEADER, 2, "price", "integer"),
        (["1,A,quote,,,99,101,5,5", "2,A,trade,NaN,3,,,,"], EV_HEADER, 2, "price", "integer"),
        (["1,A,quote,,,0,101,5,5"], EV_HEADER, 1, "bid", "positive"),
        (["1,A,quote,,,99,101,5,-5"], EV_HEADER, 1, "ask_size", "negative"),
        (["1,A,quote,,,,101,5,5"], EV_HEADER, 1, "bid", "needs bid"),
        (["1,A,fill,,,99,101,5,5"], EV_HEADER, 1, "kind", "unknown kind"),
        (["1,,quote,,,99,101,5,5"], EV_HEADER, 1, "symbol", "missing"),
        (["5,A,trade,1,1,,,,", "4,A,trade,1,1,,,,"], EV_HEADER, 2, "ts", "not sorted"),
        (["5,A,trade,1,1,,,,", "5,A,trade,2,1,,,,"], EV_HEADER, 2, "ts", "duplicate"),
    ],
)
def test_bad_events_are_named(
    tmp_path: Path,
    lines: list[str],
    header: str,
    row: int | None,
    column: str,
    needle: str,
) -> None:
    path = _csv(tmp_path, lines, header)
    with pytest.raises(MarketDataError, match=needle) as info:
        load_events(path)
    assert (info.value.source, info.value.row, info.value.column) == (str(path), row, column)


def test_mistyped_parquet_column_is_named(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "ts": [1, 2],
            "symbol": ["A", "A"],
            "kind": ["trade"] * 2,
            "price": [1.0, 2.5],
            "size": [1, 1],
        }
    )
    frame.write_parquet(tmp_path / "f.parquet")
    with pytest.raises(MarketDataError, match="expected an integer") as info:
        load_events(tmp_path / "f.parquet")
    assert (info.value.row, info.value.column) == (2, "price")
    frame.with_columns(pl.col("size").cast(pl.String) + "x").write_parquet(tmp_path / "g.parquet")
    with pytest.raises(MarketDataError) as info:
        load_events(tmp_path / "g.parquet")
    assert info.value.column in ("price", "size")


def test_parquet_timestamps_become_nanoseconds(tmp_path: Path) -> None:
    import datetime as dt

    when = [dt.datetime(2024, 1, 2, 9, 30), dt.datetime(2024, 1, 2, 9, 31)]
    frame = pl.DataFrame(
        {"ts": when, "symbol": ["A", "A"], "kind": ["trade"] * 2, "price": [10, 11], "size": [1, 2]}
    )
    frame.write_parquet(tmp_path / "t.parquet")
    events = load_events(tmp_path / "t.parquet")
    assert events.get_column("ts").to_list() == [1_704_187_800 * 10**9, 1_704_187_860 * 10**9]
