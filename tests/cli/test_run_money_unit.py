"""The live run names money in the unit the backtest names it in for the same symbols (one rule:
``Instruments.currency_of``), on the summary and the progress line."""

from __future__ import annotations

from types import SimpleNamespace

import polars as pl
import pytest

from tests.cli.test_run_summary_text import _summary
from zcbench.backtest import BacktestConfig, run_backtest
from zcbench.cli.run import _print_summary, _Progress
from zcbench.errors import DataError
from zcbench.examples import MACrossover
from zcbench.marketdata import Instrument, Instruments, default_instruments
from zcbench.strategy import make_strategy


def _bars(symbol: str) -> pl.DataFrame:
    day = 86_400 * 10**9
    closes = [10_000 + 100 * (i % 7) for i in range(40)]
    return pl.DataFrame({
        "ts": [i * day for i in range(len(closes))], "symbol": [symbol] * len(closes),
        "kind": ["bar"] * len(closes), "open": closes, "high": closes, "low": closes,
        "close": closes, "volume": [1] * len(closes),
    })


@pytest.mark.parametrize("symbol", ["AAA", "BBB", "CCC"])  # the synthetic symbols
def test_live_summary_and_progress_name_the_backtests_unit(
    symbol: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_backtest(make_strategy(MACrossover, {}), _bars(symbol), BacktestConfig(count=1))
    _print_summary(_summary({symbol: 300}))
    line = next(x for x in capsys.readouterr().out.splitlines() if "PnL" in x)
    assert line.startswith(f"  PnL 0.00 {result.currency};"), line
    assert "currency units" not in line
    progress = _Progress(terminal=False, every_s=0.0)
    progress(SimpleNamespace(batches=1, events_per_s=1.0, freshness_p50_ms=1.0,
                             freshness_p99_ms=1.0, signals=0, pnl=12_500, positions={symbol: 1}))
    assert f"PnL +1.25 {result.currency}" in capsys.readouterr().err


def test_one_rule_decides_the_currency() -> None:
    from zcbench.cli.run import _money_unit

    table = Instruments((Instrument("X", "EUR"), Instrument("Y", "EUR"), Instrument("Z", "USD")),
                        strict=True, source="t.csv")
    assert table.currency_of(["X", "Y"]) == "EUR"
    assert table.currency_of([]) == "USD"  # nothing traded: the default instrument's
    with pytest.raises(DataError, match="instruments in EUR, USD"):
        table.currency_of(["X", "Z"])
    with pytest.raises(DataError, match=r"unknown instrument 'W': not in t\.csv"):
        table.currency_of(["W"])
    assert _money_unit({}) == default_instruments().currency_of([]) == "USD"
