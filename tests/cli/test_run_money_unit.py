"""The live run names money in the currency and unit the run recorded (its account, made by the
backtest's rule, ``Instruments.account``), on the summary and the progress line; nothing is
worked out again from instruments when it is shown."""

from __future__ import annotations

from types import SimpleNamespace

import polars as pl
import pytest

from tests.cli.test_run_summary_text import _summary
from zcbench.backtest import BacktestConfig, run_backtest
from zcbench.cli.run import _print_summary, _Progress
from zcbench.errors import DataError
from zcbench.examples import MACrossover
from zcbench.host.sources import account_of
from zcbench.marketdata import Instrument, Instruments
from zcbench.strategy import make_strategy


def _bars(symbol: str) -> pl.DataFrame:
    day = 86_400 * 10**9
    closes = [10_000 + 100 * (i % 7) for i in range(40)]
    return pl.DataFrame({
        "ts": [i * day for i in range(len(closes))], "symbol": [symbol] * len(closes),
        "kind": ["bar"] * len(closes), "open": closes, "high": closes, "low": closes,
        "close": closes, "volume": [1] * len(closes),
    })


@pytest.mark.parametrize("symbol", ["AAA", "EURUSD", "BTCUSD"])
def test_a_runs_account_is_the_backtests(symbol: str) -> None:
    result = run_backtest(make_strategy(MACrossover, {}), _bars(symbol), BacktestConfig(count=1))
    account = account_of(_bars(symbol))
    assert (account.currency, account.money_scale) == (result.currency, result.money_scale)


def test_summary_and_progress_show_the_recorded_currency_and_unit(
    capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = _summary({"X": 3}, pnl=12_345, currency="EUR", money_scale=100_000)
    _print_summary(recorded)
    line = next(x for x in capsys.readouterr().out.splitlines() if "PnL" in x)
    assert line.startswith("  PnL +0.12345 EUR;"), line
    progress = _Progress(terminal=False, every_s=0.0)
    progress(SimpleNamespace(batches=1, events_per_s=1.0, freshness_p50_ms=1.0,
                             freshness_p99_ms=1.0, signals=0, pnl=-5, positions={"X": 1},
                             currency="EUR", money_scale=10**8))
    assert "PnL -0.00000005 EUR" in capsys.readouterr().err


def test_one_rule_decides_the_currency() -> None:
    table = Instruments((Instrument("X", "EUR"), Instrument("Y", "EUR"), Instrument("Z", "USD")),
                        strict=True, source="t.csv")
    assert table.currency_of(["X", "Y"]) == "EUR"
    assert table.currency_of([]) == "USD"  # nothing traded: the default instrument's
    with pytest.raises(DataError, match="instruments in EUR, USD"):
        table.currency_of(["X", "Z"])
    with pytest.raises(DataError, match=r"unknown instrument 'W': not in t\.csv"):
        table.currency_of(["W"])
    assert table.account(["X"]).currency == "EUR"
