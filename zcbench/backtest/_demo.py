"""The research step of ``zcbench demo``: both example strategies, backtested and written out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from zcbench.backtest._engine import BacktestConfig, run_backtest
from zcbench.strategy import make_strategy

__all__ = ["DEMO_SEED", "research_demo"]

DEMO_SEED: Final = 7
DEMO_TICK_WIDTH_NS: Final = 100_000_000  # 100 ms event-time buckets


def research_demo(out_dir: str | Path, *, seed: int = DEMO_SEED) -> dict[str, Any]:
    """Backtest the daily example on the committed MSFT data and the tick example on seeded
    synthetic ticks; write each result under ``out_dir/daily`` and ``out_dir/ticks`` and a
    ``research.json`` summary; return that summary.
    """
    from zcbench.examples import MACrossover, OrderFlowImbalance
    from zcbench.marketdata import SyntheticConfig, generate_ticks, load_ohlcv, sample_daily_path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bars = load_ohlcv(sample_daily_path())
    daily = run_backtest(
        make_strategy(MACrossover, {"quantity": 1000}),
        bars,
        BacktestConfig(count=1, fee_bps=1.0, initial_cash=100_000.0),
    )
    synthetic = SyntheticConfig()
    ticks = generate_ticks(synthetic, seed=seed)
    tick = run_backtest(
        make_strategy(OrderFlowImbalance),
        ticks,
        BacktestConfig(width_ns=DEMO_TICK_WIDTH_NS, fee_bps=0.2, initial_cash=1_000_000.0),
    )
    summary = {
        "daily": {
            **daily.summary(),
            "data": "data/msft_daily.csv",
            "out": str(daily.write(out / "daily")),
        },
        "ticks": {
            **tick.summary(),
            "data": {"synthetic": synthetic.to_dict(), "seed": seed},
            "out": str(tick.write(out / "ticks")),
        },
    }
    text = json.dumps(summary, indent=2, sort_keys=True)
    (out / "research.json").write_text(text + "\n", encoding="utf-8")
    return summary
