"""Capital binds live as in the backtest: one buying-power rule in the one execution layer.

A strategy that buys every bar runs out of cash: a live run on the paper venue (``run_live``
with ``capital``) refuses its orders with ``insufficient_cash``, cash never goes below zero,
and the backtest on the same bars with the same ``initial_cash`` (its closed loop, the live
run's execution layer and venue) refuses the same orders for the same reason, row for row;
its fills table, equity and metrics come from that journal, so its PnL is the live run's.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import polars as pl
import pytest

from zcbench.backtest import BacktestConfig, run_backtest
from zcbench.host import ReplaySource
from zcbench.host.execution import RiskLimits, read_journal
from zcbench.host.live import ModuleImage, run_live
from zcbench.marketdata import BatchSpec, default_instruments, load_ohlcv, sample_daily_path
from zcbench.money import ticks_of
from zcbench.risk import INSUFFICIENT_CASH
from zcbench.venue import PaperVenue

STRATEGY = textwrap.dedent(
    '''
    from dataclasses import dataclass
    from zcbench.strategy import Signal, Strategy


    @dataclass(frozen=True)
    class Params:
        size: int = 10
        every: int = 9


    class Accumulate(Strategy):
        """Buys ``size`` every bar; every ``every``-th bar sells what it holds, if anything."""

        name = "accumulate"
        params_type = Params
        input_fields = ("close",)

        def __init__(self, params):
            super().__init__(params)
            self.bars = 0

        def on_batch(self, batch, context=None):
            if not len(batch):
                return []
            self.bars += 1
            symbol = batch.events["symbol"][0]
            held = context.position(symbol) if context is not None else 0
            if held and self.bars % self.params.every == 0:
                return [Signal(symbol, "sell", held)]
            return [Signal(symbol, "buy", self.params.size)]
    '''
)
CASH = 100.0  # currency units: five or so of the bars' buys of 10 at about 1.90


def _bars() -> pl.DataFrame:
    bars = load_ohlcv(sample_daily_path()).slice(2_000, 60)
    return bars.with_columns(pl.lit(1_000_000, dtype=pl.Int64).alias("volume"))


def _cash_after_each_fill(journal: pl.DataFrame, capital: int) -> list[int]:
    fills = journal.filter(pl.col("event") == "fill")
    signed = [q if side == "buy" else -q for q, side in
              zip(fills["quantity"], fills["side"], strict=True)]
    cash, out = capital, []
    for q, px in zip(signed, fills["price_ticks"], strict=True):
        cash -= q * px
        out.append(cash)
    return out


@pytest.mark.slow
def test_a_live_run_refuses_what_capital_cannot_carry_as_the_backtest_does(
    tmp_path: Path,
) -> None:
    module = tmp_path / "accumulate.py"
    module.write_text(STRATEGY)
    bars = _bars()
    # the sample's MSFT is quoted to 1/100,000: the account counts in that unit
    scale, units = default_instruments().money_units(["MSFT"])
    assert (scale, units) == (100_000, {"MSFT": 1})
    capital = ticks_of(CASH, scale=scale)
    summary = run_live(
        ModuleImage(module), tmp_path / "run", ReplaySource(bars, BatchSpec(count=1)),
        limits=RiskLimits(), capital=capital, account=default_instruments().account(["MSFT"]),
        venue=PaperVenue(),
        feedback=True,
        run_id="run-capital", clock_every_s=None,
    )
    assert summary.status == "completed", summary.reason
    assert summary.capital == {"amount": capital, "money_scale": scale, "leverage": 1.0,
                               "short_margin": 1.0}
    live = read_journal(tmp_path / "run").rows
    rejects = live.filter(pl.col("event") == "reject")
    # capital ran out: refused by name, with what the order needed and what the account had
    assert rejects.height > 0
    assert set(rejects["control"]) == {INSUFFICIENT_CASH}
    assert all(r.startswith(f"{INSUFFICIENT_CASH}: ") for r in rejects["reason"])
    assert (rejects["attempted_value"] > rejects["limit_value"]).all()
    assert live.filter(pl.col("event") == "fill").height > rejects.height // 4  # sells freed cash
    cash = _cash_after_each_fill(live, capital)
    assert min(cash) >= 0
    top = int(bars.get_column("close").max())  # type: ignore[arg-type]
    assert min(cash) < 10 * top  # it did run low: less than one more order

    # the backtest on the same bars, with the same capital, refuses the same orders the same way
    class_source = {}
    exec(compile(STRATEGY, str(module), "exec"), class_source)  # the same strategy, in-process
    strategy = class_source["Accumulate"](class_source["Params"]())
    result = run_backtest(strategy, bars, BacktestConfig(count=1, initial_cash=CASH))
    assert result.journal is not None
    order_of = ["seq", "log_index", "event", "symbol", "side", "quantity", "reason", "control",
                "limit_value", "attempted_value", "price_ticks", "position_after"]
    mine = result.journal.select(order_of)
    theirs = live.select(order_of)
    assert mine.equals(theirs)
    # the backtest's own tables come from that journal (one fill model, the paper venue's):
    # the same orders refused by the same rule, the same fills, and the live run's PnL
    refused = result.fills.filter(pl.col("status") == "refused")
    assert set(refused["reason"]) == {INSUFFICIENT_CASH}
    assert refused["seq"].to_list() == rejects["seq"].to_list()
    filled = result.fills.filter(pl.col("status") == "filled")
    live_fills = live.filter(pl.col("event") == "fill")
    assert filled.select("seq", "fill_price", "filled_quantity").rows() == live_fills.select(
        "seq", "price_ticks", "quantity").rows()
    assert filled["cash_after"].to_list() == cash
    assert (result.fills["cash_after"].drop_nulls() >= 0).all()
    pnl = result.metrics_dict()["pnl"]
    assert isinstance(pnl, float)
    assert round(pnl * scale) == summary.pnl
    assert int(result.equity["equity"][-1]) - capital == summary.pnl
