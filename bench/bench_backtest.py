"""Backtest throughput against the floor any backtester pays.

Baseline, measured in the same run: a bare loop over the same batches calling the same strategy
directly (no wire codec, no fills, no accounting). The backtest replays those batches through
encode -> decode -> apply_strategy (the enclave's path) and then books fills and equity; its
ratio to the bare loop is the cost of that parity and of the accounting. A no-op strategy's bare
loop shows the cost of iteration alone. The synthetic generator is compared with drawing as many
standard normals with numpy.

    .venv/bin/python bench/bench_backtest.py           # 1,000,000 events
    .venv/bin/python bench/bench_backtest.py --quick   # a smoke run
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zcbench.backtest import BacktestConfig, prepare, replay, run_prepared
from zcbench.examples import OrderFlowImbalance
from zcbench.marketdata import SyntheticConfig, batches, generate_ticks
from zcbench.strategy import Batch, Signal, Strategy, make_strategy


@dataclass(frozen=True)
class _NoParams:
    pass


class _Noop(Strategy):
    name = "noop"
    params_type = _NoParams
    input_fields = OrderFlowImbalance.input_fields

    def on_batch(self, batch: Batch) -> Sequence[Signal]:
        return []


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _line(label: str, events: int, seconds: float, base: float | None = None) -> str:
    rate = events / seconds if seconds > 0 else float("inf")
    ratio = f"  x{seconds / base:6.2f} the baseline's time" if base else "  (baseline)"
    return f"  {label:<44} {rate:>14,.0f} events/s{ratio}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    n = 20_000 if args.quick else args.events
    cfg = SyntheticConfig(rate=200_000.0, duration_s=n / 200_000.0)

    print(f"synthetic generator, {cfg.n_events:,} events")
    t_np, _ = _timed(lambda: np.random.default_rng(0).standard_normal(cfg.n_events))
    t_gen, events = _timed(lambda: generate_ticks(cfg, seed=1))
    print(_line("numpy: standard normals, one per event", cfg.n_events, t_np))
    print(_line("generate_ticks", cfg.n_events, t_gen, t_np))

    fields = OrderFlowImbalance.fields()
    params = {"window": 4, "enter_pct": 15}
    for label, config in (
        ("100 ms event-time batches", BacktestConfig(width_ns=100_000_000, fee_bps=0.2)),
        ("batches of 200 events", BacktestConfig(count=200, fee_bps=0.2)),
    ):
        cut = list(batches(events, fields, width_ns=config.width_ns, count=config.count))
        print(f"\n{label}: {len(cut):,} batches of {events.height / len(cut):,.0f} events")
        noop = _Noop(_NoParams())
        t_noop, _ = _timed(lambda: [noop.on_batch(b) for b in cut])  # noqa: B023
        strategy = make_strategy(OrderFlowImbalance, params)
        t_bare, _ = _timed(lambda: [strategy.on_batch(b) for b in cut])  # noqa: B023
        t_prep, data = _timed(lambda: prepare(events, fields, config.spec))  # noqa: B023
        t_replay, _ = _timed(lambda: replay(make_strategy(OrderFlowImbalance, params), data))  # noqa: B023
        t_full, result = _timed(
            lambda: run_prepared(make_strategy(OrderFlowImbalance, params), data, config)  # noqa: B023
        )
        print(_line("bare loop, same strategy (baseline)", events.height, t_bare))
        print(_line("bare loop, no-op strategy", events.height, t_noop, t_bare))
        print(_line("prepare: validate, cut, encode (once)", events.height, t_prep, t_bare))
        print(_line("replay: decode + strategy + signal codec", events.height, t_replay, t_bare))
        print(_line("run_prepared: replay + fills + metrics", events.height, t_full, t_bare))
        print(_line("backtest end to end (prepare + run)", events.height, t_prep + t_full, t_bare))
        print(f"  ({result.signals.height} signals, digest {result.signals_digest[:16]}...)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
