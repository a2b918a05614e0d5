"""A live run counts money at its instruments' precision, as the backtest does: an FX pair
quoted to five decimals beside a four-decimal stock, the same PnL live and in the backtest's
closed loop to the last digit, in the unit and currency the run records (summary, journal
header) and its tear sheet recomputes from the signed log."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest

import zcbench.examples.ma_crossover as crossover_module
from zcbench.backtest import BacktestConfig, backtest_log, prepare, run_backtest
from zcbench.evidence import collect_evidence
from zcbench.examples import MACrossover, MACrossoverParams
from zcbench.host import ReplaySource
from zcbench.host.execution import read_journal
from zcbench.host.live import ModuleImage, run_live
from zcbench.host.summary import run_account
from zcbench.marketdata import BatchSpec, default_instruments, last_marks
from zcbench.venue import PaperVenue

PARAMS = {"fast": 2, "slow": 5, "quantity": 1_000, "allow_short": True}
SPEC = BatchSpec(count=1)
DAY = 86_400 * 10**9


def _bars() -> pl.DataFrame:
    """EURUSD closes at five decimals (1.08341 is 108_341 of its unit) and AAA at four."""
    rows = []
    for i in range(60):
        fx = 108_000 + 37 * ((i * 7) % 23) + i  # odd fifth decimals
        stock = 1_000_000 + 900 * ((i * 5) % 11)
        rows.append(("EURUSD", 2 * i * DAY, fx))
        rows.append(("AAA", (2 * i + 1) * DAY, stock))
    return pl.DataFrame({
        "ts": [r[1] for r in rows], "symbol": [r[0] for r in rows],
        "kind": ["bar"] * len(rows), "price": [r[2] for r in rows],
        "open": [r[2] for r in rows], "high": [r[2] for r in rows], "low": [r[2] for r in rows],
        "close": [r[2] for r in rows], "size": [10**6] * len(rows),
        "volume": [10**6] * len(rows),
    })


def _exact_pnl(run: Path, bars: pl.DataFrame) -> Fraction:
    """The PnL in currency, worked out here from the journal's fills and the last marks, each
    price divided by its own instrument's scale (no account unit involved)."""
    table = default_instruments()
    fills = read_journal(run).rows.filter(pl.col("event") == "fill")
    cash = Fraction(0)
    held: dict[str, int] = {}
    for symbol, side, qty, px in fills.select(
            "symbol", "side", "quantity", "price_ticks").iter_rows():
        signed = qty if side == "buy" else -qty
        held[symbol] = held.get(symbol, 0) + signed
        cash -= Fraction(signed * px, table[symbol].price_scale)
    marks = last_marks(bars)
    return cash + sum(Fraction(q * marks[s], table[s].price_scale) for s, q in held.items())


@pytest.mark.slow
def test_a_five_decimal_pair_keeps_its_precision_live_and_in_the_backtest(tmp_path: Path) -> None:
    bars = _bars()
    run = tmp_path / "run"
    summary = run_live(ModuleImage(Path(crossover_module.__file__), PARAMS), run,
                       ReplaySource(bars, SPEC), venue=PaperVenue(), feedback=True,
                       run_id="run-fine",
                       clock_every_s=None)
    assert summary.status == "completed", summary.reason
    assert summary.fills > 4
    assert {*read_journal(run).rows.filter(pl.col("event") == "fill")["symbol"]} == {
        "EURUSD", "AAA"}

    # the account is the backtest's: the finer unit, one AAA price unit is 10 of it
    result = run_backtest(MACrossover(MACrossoverParams(**PARAMS)), bars, BacktestConfig(count=1))
    assert (summary.currency, summary.money_scale) == (result.currency, result.money_scale)
    assert (summary.money_scale, summary.units) == (100_000, {"AAA": 10, "EURUSD": 1})
    recorded = run_account(run)
    assert recorded is not None
    assert recorded.to_json() == {
        "currency": "USD", "money_scale": 100_000, "units": {"AAA": 10, "EURUSD": 1}}
    assert read_journal(run).header["money_scale"] == 100_000

    # the same PnL to the last digit: the backtest's closed loop, the exact sum, the tear sheet
    strategy = MACrossover(MACrossoverParams(**PARAMS))
    expected = backtest_log(strategy, prepare(bars, strategy.fields(), SPEC),
                            order_prefix="run-fine")
    assert summary.pnl == expected.pnl
    assert expected.account.money_scale == summary.money_scale
    exact = _exact_pnl(run, bars)
    assert exact != 0
    assert Fraction(summary.pnl, summary.money_scale) == exact
    performance = collect_evidence([run], trust="dev").tables["performance"]
    assert performance["pnl_ticks"].to_list() == [summary.pnl]
    assert performance["pnl_matches_summary"].to_list() == [True]
    assert performance.select("currency", "money_scale").rows() == [("USD", 100_000)]
