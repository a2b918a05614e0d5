"""Instruments: exact prices at each one's unit, off-tick prices refused by row and column."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zcbench.backtest import BacktestConfig, run_backtest
from zcbench.errors import DataError, UsageError
from zcbench.examples import MACrossover
from zcbench.marketdata import (
    Instrument,
    Instruments,
    MarketDataError,
    default_instruments,
    load_events,
    load_instruments,
    load_ohlcv,
)
from zcbench.strategy import make_strategy


def _ohlcv(path: Path, closes: list[str]) -> Path:
    import datetime

    lines = ["Date,Open,High,Low,Close,Volume"]
    for i, c in enumerate(closes):
        day = datetime.date(2020, 1, 1) + datetime.timedelta(days=i)
        lines.append(f"{day.isoformat()},{c},{c},{c},{c},100")
    path.write_text("\n".join(lines) + "\n")
    return path


def _text(units: int, scale: int) -> str:
    return format((Decimal(units) / scale).normalize(), "f")


def test_defaults_cover_the_sample_and_the_synthetic_symbols() -> None:
    table = default_instruments()
    assert table["MSFT"].price_scale == 100_000
    assert table["EURUSD"].price_scale == 100_000
    assert table["BTCUSD"].price_scale == 10**8
    assert table["AAA"].price_scale == 10_000
    assert table.of("ZZZ") is not None  # lenient: a symbol not listed gets the default unit


@pytest.mark.parametrize(
    ("symbol", "closes", "scale"),
    [
        ("EURUSD", ["1.07533", "1.0754", "1.07001", "0.99999"], 100_000),
        ("BTCUSD", ["61234.12345678", "0.00000001", "61234.1", "99999.99999999"], 10**8),
    ],
)
def test_fx_and_crypto_precision_round_trips_exactly(
    tmp_path: Path, symbol: str, closes: list[str], scale: int
) -> None:
    bars = load_ohlcv(_ohlcv(tmp_path / f"{symbol.lower()}_daily.csv", closes))
    units = bars.get_column("close").to_list()
    assert [_text(u, scale) for u in units] == [format(Decimal(c).normalize(), "f") for c in closes]
    # the parquet copy (floats) reads to the same integers
    pl.read_csv(tmp_path / f"{symbol.lower()}_daily.csv").write_parquet(tmp_path / "p.parquet")
    assert load_ohlcv(tmp_path / "p.parquet", symbol=symbol).get_column("close").to_list() == units


@pytest.mark.slow
@given(units=st.lists(st.integers(1, 10**14), min_size=1, max_size=20))
def test_any_eight_decimal_price_round_trips(units: list[int]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        texts = [_text(u, 10**8) for u in units]
        bars = load_ohlcv(_ohlcv(Path(folder) / "btcusd_daily.csv", texts))
        assert bars.get_column("close").to_list() == units


def test_a_price_finer_than_the_tick_is_refused_with_row_and_column(tmp_path: Path) -> None:
    path = _ohlcv(tmp_path / "abc_daily.csv", ["1.25", "0.07533", "1.5"])  # ABC: 0.0001
    with pytest.raises(MarketDataError) as info:
        load_ohlcv(path)
    assert (info.value.row, info.value.column) == (2, "Open")
    assert "0.07533" in str(info.value)
    assert "never rounded" in str(info.value)


def test_a_price_off_a_coarse_tick_is_refused(tmp_path: Path) -> None:
    table = Instruments((Instrument("FUT", "USD", "0.25", 1),), strict=True)
    ok = load_ohlcv(_ohlcv(tmp_path / "fut_daily.csv", ["100.25", "100.5"]), instruments=table)
    assert ok.get_column("close").to_list() == [1_002_500, 1_005_000]
    with pytest.raises(MarketDataError) as info:
        load_ohlcv(_ohlcv(tmp_path / "fut_daily.csv", ["100.25", "100.3"]), instruments=table)
    assert (info.value.row, info.value.column) == (2, "Open")
    assert "not a multiple of FUT's tick 0.25" in str(info.value)


def test_event_file_prices_must_be_whole_ticks_and_known(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("ts,symbol,kind,price,size\n1,FUT,trade,1002500,1\n2,FUT,trade,1002600,1\n")
    table = Instruments((Instrument("FUT", "USD", "0.25", 1),), strict=True)
    with pytest.raises(MarketDataError) as info:
        load_events(path, instruments=table)
    assert (info.value.row, info.value.column) == (2, "price")
    path.write_text("ts,symbol,kind,price,size\n1,FUT,trade,1002500,1\n2,XYZ,trade,5,1\n")
    with pytest.raises(MarketDataError) as info:
        load_events(path, instruments=table)
    assert (info.value.row, info.value.column) == (2, "symbol")
    assert "unknown instrument 'XYZ'" in str(info.value)


def test_instruments_file_errors_name_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "instruments.csv"
    path.write_text("symbol,currency,tick_size,lot_size\nA,USD,0.01,1\nB,USD,-1,1\n")
    with pytest.raises(MarketDataError) as info:
        load_instruments(path)
    assert (info.value.row, info.value.column) == (2, "tick_size")
    path.write_text("symbol,currency,tick_size,lot_size\nA,USD,0.01,1\nA,USD,0.01,1\n")
    with pytest.raises(MarketDataError, match="listed twice"):
        load_instruments(path)
    path.write_text("symbol,currency,tick_size\nA,USD,0.01\n")
    with pytest.raises(MarketDataError, match="lot_size"):
        load_instruments(path)
    with pytest.raises(DataError):
        Instrument("A", "usd")


def test_backtest_money_is_exact_at_the_finest_unit_and_lots_bind(tmp_path: Path) -> None:
    closes = [f"1.{10000 + i * 7 % 900:05d}"[:7] for i in range(80)]
    bars = load_ohlcv(_ohlcv(tmp_path / "eurusd_daily.csv", closes))
    strategy = make_strategy(MACrossover, {"fast": 3, "slow": 8, "quantity": 1000})
    result = run_backtest(strategy, bars, BacktestConfig(count=1, initial_cash=10_000.0))
    assert result.money_scale == 100_000
    assert result.currency == "USD"
    filled = result.fills.filter(pl.col("status") == "filled")
    assert filled.height > 0
    # notional is price (1e-5 USD) x quantity, exactly
    assert (filled["notional"] == filled["fill_price"] * filled["quantity"]).all()
    lots = Instruments((Instrument("EURUSD", "USD", "0.00001", 3),), strict=True)
    config = BacktestConfig(count=1, initial_cash=10_000.0, instruments=lots)
    refused = run_backtest(
        make_strategy(MACrossover, {"fast": 3, "slow": 8, "quantity": 1000}), bars, config
    ).fills
    assert set(refused["reason"].drop_nulls()) == {"lot_size"}
    other = Instruments((Instrument("GBPUSD", "USD", "0.00001", 1),), strict=True)
    with pytest.raises(UsageError, match="unknown instrument"):
        run_backtest(strategy, bars, BacktestConfig(count=1, instruments=other))
