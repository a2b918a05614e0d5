"""The pack's backtest of a strategy that takes the feedback context is ``run_prepared``'s: the
closed loop's venue model over the logged batches, so its PnL is the live paper run's and the
backtest's, not the next-event model's (whose fill of a resting limit order is another)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import polars as pl
import pytest

from tests.host.support import REST_THEN_SELL
from zcbench.backtest import BacktestConfig, prepare, run_prepared
from zcbench.cli import main
from zcbench.evidence.tearsheet import DEFAULT_CAPITAL_TICKS
from zcbench.host import ReplaySource
from zcbench.host.live import ModuleImage, RunSummary, run_live
from zcbench.marketdata import BatchSpec, load_ohlcv, sample_daily_path
from zcbench.strategy import PRICE_SCALE, Strategy, find_strategy
from zcbench.venue import PaperVenue

pytestmark = pytest.mark.slow

SPEC = BatchSpec(count=1)

# The resting strategy of the restart tests (tests/host/support.py), with the fields given.
def _source(fields: tuple[str, ...]) -> str:
    declared = 'input_fields = ("close", "volume")'
    assert declared in REST_THEN_SELL
    return REST_THEN_SELL.replace(declared, f"input_fields = {fields!r}")


def _bars() -> pl.DataFrame:
    bars = load_ohlcv(sample_daily_path()).slice(3_150, 60)
    return bars.with_columns(pl.lit(120, pl.Int64).alias("volume"))


def _strategy(path: Path) -> Strategy:
    spec = importlib.util.spec_from_file_location("rest_then_sell", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = find_strategy(module)
    return cls(cls.params_type())


def _live_run(module: Path, tmp_path: Path) -> tuple[RunSummary, Path, pl.DataFrame]:
    bars = _bars()
    run = tmp_path / "run"
    summary = run_live(ModuleImage(module, {}), run, ReplaySource(bars, SPEC),
                       venue=PaperVenue(), feedback=True, run_id="run-rest")
    assert summary.status == "completed", summary.reason
    return summary, run, bars


def test_pack_backtest_of_a_context_strategy_is_run_prepared_and_the_live_pnl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "rest_then_sell.py"
    module.write_text(_source(("close", "volume")))
    summary, run, bars = _live_run(module, tmp_path)

    strategy = _strategy(module)
    result = run_prepared(strategy, prepare(bars, strategy.fields(), SPEC),
                          BacktestConfig(count=1, initial_cash=DEFAULT_CAPITAL_TICKS / PRICE_SCALE))
    fills = result.fills
    # the case is what it says: the limit order rested, then filled in part, then was sold
    assert result.journal is not None
    assert fills.get_column("status").to_list()[0] in ("partially_filled", "filled")
    # the order rested on the first bar (its close above the limit) and filled at later closes
    first_price = result.journal.filter(pl.col("event") == "fill").get_column("price_ticks")[0]
    closes = bars.get_column("close").to_list()
    assert closes[0] > fills.get_column("limit_price")[0] >= first_price
    assert first_price in closes[1:]
    assert result.journal.filter(pl.col("event") == "fill").height > 2  # in parts
    backtest_pnl = int(result.equity.get_column("equity")[-1]) - int(
        DEFAULT_CAPITAL_TICKS * result.money_scale // PRICE_SCALE)
    assert backtest_pnl != 0
    assert summary.pnl == backtest_pnl  # the live paper run agrees with the backtest

    pack = tmp_path / "pack"
    code = main(["evidence", str(run), "--out", str(pack), "--trust", "dev"])
    assert code == 0, capsys.readouterr().err
    row = pl.read_parquet(pack / "performance_backtest.parquet").row(0, named=True)
    assert row["pnl_ticks"] == backtest_pnl
    assert row["n_fills"] == result.metrics_dict()["n_fills"]
    assert row["total_return"] == pytest.approx(result.metrics_dict()["total_return"])
    live = pl.read_parquet(pack / "performance.parquet").row(0, named=True)
    assert live["summary_pnl_ticks"] == row["pnl_ticks"]  # the live run's own pnl_ticks
    # every order and report row, the partial fills included, is of a signed signal, and the
    # live table counts the fills the signed log holds (a fill of 120 of 300 was once unmatched)
    orders = pl.read_parquet(pack / "orders.parquet")
    assert orders.filter(pl.col("event") == "fill").height > 2
    assert orders.get_column("in_signed_log").all()
    assert live["pnl_ticks"] == row["pnl_ticks"]
    assert row["fill_model"] == "venue"


def test_a_log_without_the_bar_volume_is_backtested_by_the_next_event_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the strategy declares only the close: its logged bars lack the volume, the venue's
    # liquidity, so the pack cannot replay the venue and says which model it used instead
    module = tmp_path / "rest_then_sell.py"
    module.write_text(_source(("close",)))
    _, run, _ = _live_run(module, tmp_path)
    pack = tmp_path / "pack"
    code = main(["evidence", str(run), "--out", str(pack), "--trust", "dev"])
    assert code == 0, capsys.readouterr().err
    row = pl.read_parquet(pack / "performance_backtest.parquet").row(0, named=True)
    assert row["fill_model"] == "next_event"
