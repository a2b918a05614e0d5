"""Accounting invariants on random order streams: cash, equity and PnL always reconcile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.backtest import BacktestConfig, run_backtest
from zcbench.marketdata import SyntheticConfig, generate_ticks
from zcbench.strategy import Batch, Signal, Strategy

EVENTS = generate_ticks(SyntheticConfig(rate=2_000, duration_s=1.0, symbols=("A", "B")), seed=4)

Order = tuple[int, str, str, int, int | None]


@dataclass(frozen=True)
class PlanParams:
    plan: tuple[Order, ...] = ()


class Planned(Strategy):
    name = "planned"
    params_type = PlanParams
    input_fields = ()

    def on_batch(self, batch: Batch) -> Sequence[Signal]:
        return [
            Signal(sym, side, qty, limit)  # type: ignore[arg-type]
            for seq, sym, side, qty, limit in self.params.plan
            if seq == batch.seq
        ]


orders = st.lists(
    st.tuples(
        st.integers(0, 40),
        st.sampled_from(["A", "B"]),
        st.sampled_from(["buy", "sell"]),
        st.integers(1, 500),
        st.none() | st.integers(900_000, 1_600_000),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(
    plan=orders,
    slippage=st.integers(0, 300),
    fee_bps=st.sampled_from([0.0, 0.5, 3.0]),
)
def test_cash_equity_and_pnl_reconcile(plan: list[Order], slippage: int, fee_bps: float) -> None:
    config = BacktestConfig(count=50, slippage_ticks=slippage, fee_bps=fee_bps)
    result = run_backtest(Planned(PlanParams(tuple(plan))), EVENTS, config)
    initial = 1_000_000 * 10_000
    fills = result.fills.filter(pl.col("status") == "filled")
    sign = pl.when(pl.col("side") == "buy").then(1).otherwise(-1)
    signed_notional = fills.select((sign * pl.col("notional")).sum()).item() or 0
    fees = fills.get_column("fee").sum() or 0
    last = result.equity.row(-1, named=True)
    assert last["cash"] == initial - signed_notional - fees
    assert last["equity"] == last["cash"] + last["position_value"]
    m = result.metrics_dict()
    assert m["pnl"] == pytest.approx((last["equity"] - initial) / 10_000)
    assert m["fees"] == pytest.approx(fees / 10_000)
    # realised + unrealised (against the average cost) = PnL before fees
    gross = 0.0
    positions = result.positions
    for symbol in ("A", "B"):
        rows = positions.filter(pl.col("symbol") == symbol)
        if rows.height == 0:
            continue
        final = rows.row(-1, named=True)
        gross += final["realised_pnl"]
        if final["position"]:
            mark = _last_mark(symbol, int(result.equity["ts"][-1]))
            gross += (mark / 10_000 - final["avg_cost"]) * final["position"]
    assert gross == pytest.approx(m["pnl"] + m["fees"], abs=1e-6)
    # fills happen strictly after the batch that asked for them
    for row in fills.iter_rows(named=True):
        batch_end_ts = result.equity["ts"][row["seq"]]
        assert row["fill_ts"] > batch_end_ts
        if row["limit_price"] is not None:
            worse = row["fill_price"] - row["limit_price"]
            assert (worse <= 0) if row["side"] == "buy" else (worse >= 0)


def _last_mark(symbol: str, upto_ts: int) -> int:
    ev = EVENTS.filter((pl.col("symbol") == symbol) & (pl.col("ts") <= upto_ts)).row(-1, named=True)
    return ev["price"] if ev["kind"] == "trade" else (ev["bid"] + ev["ask"]) // 2
