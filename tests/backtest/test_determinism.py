"""The same backtest in fresh processes, under different hash seeds and thread counts, gives
byte-identical signals, fills, equity and metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import hashlib, json
from zcbench.backtest import BacktestConfig, run_backtest
from zcbench.examples import MACrossover, OrderFlowImbalance
from zcbench.marketdata import SyntheticConfig, generate_ticks, load_ohlcv, sample_daily_path
from zcbench.strategy import make_strategy

def fingerprint(result):
    tables = {
        name: hashlib.sha256(
            json.dumps(getattr(result, name).rows(), default=repr).encode()
        ).hexdigest()
        for name in ("signals", "fills", "positions", "equity")
    }
    return {"digest": result.signals_digest, "metrics": json.dumps(result.metrics_dict()),
            "tables": tables}

ticks = generate_ticks(SyntheticConfig(rate=20_000, duration_s=3.0), seed=11)
tick = run_backtest(make_strategy(OrderFlowImbalance, {"window": 2, "enter_pct": 10}), ticks,
                    BacktestConfig(width_ns=20_000_000, slippage_ticks=1, fee_bps=0.3))
bars = load_ohlcv(sample_daily_path())
daily = run_backtest(make_strategy(MACrossover, {"quantity": 1000}), bars,
                     BacktestConfig(count=1, fee_bps=1.0))
print(json.dumps({"ticks": fingerprint(tick), "daily": fingerprint(daily),
                  "n_tick_signals": tick.signals.height}, sort_keys=True))
"""


def _run(hash_seed: str, threads: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "POLARS_MAX_THREADS": threads}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout)
    return out


@pytest.mark.slow
def test_fresh_processes_agree_byte_for_byte() -> None:
    first = _run("1", "1")
    second = _run("4242", "2")
    assert first == second
    assert isinstance(first["n_tick_signals"], int)
    assert first["n_tick_signals"] > 10  # the comparison is about real signals, not none
