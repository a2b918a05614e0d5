"""Backtest speed and memory against backtesting.py and against the floor any backtester pays.

Baselines, each measured in the same run:

- **backtesting.py** (a benchmark dependency, the peer engine): the daily moving-average
  crossover, one bar per batch, the same rules in both (long ``quantity`` while the 20-bar SMA of
  closes is above the 50-bar one, flat below; market orders fill at the close of the bar that
  signalled, as the paper venue fills them on bars and backtesting.py with ``trade_on_close``;
  1 bp fee), on MSFT's 7,983 daily bars and on 100,000 synthetic one-minute bars; and the 100-point
  grid over ``fast`` and ``slow`` on MSFT, zcbench serial against ``Backtest.optimize``;
- **the bare loop**: the tick example's own ``on_batch`` over the same batches (no codec, no
  fills, no accounting), against the whole backtest (validation, the codec, fills, metrics);
- **the input frame**: the peak memory a 1,000,000-bar backtest adds, as a multiple of the
  frame's own size (measured in a fresh process by sampling its resident set).

    .venv/bin/python bench/bench_backtest.py           # the figures of the README's table
    .venv/bin/python bench/bench_backtest.py --quick   # a smoke run
    .venv/bin/python bench/bench_backtest.py --rows minute,grid   # only these rows
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # before backtesting.py imports tqdm: no bars

import numpy as np
import polars as pl
from backtesting import Backtest
from backtesting import Strategy as PeerStrategy

from zcbench.backtest import BacktestConfig, prepare, run_backtest, run_prepared, sweep
from zcbench.examples import MACrossover, OrderFlowImbalance
from zcbench.marketdata import (
    SyntheticConfig,
    batches,
    generate_ticks,
    load_ohlcv,
    sample_daily_path,
)
from zcbench.strategy import PRICE_SCALE, make_strategy

FAST, SLOW, QUANTITY, FEE_BPS, CASH = 20, 50, 100, 1.0, 10_000_000.0
GRID_FAST = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
GRID_SLOW = [60, 70, 80, 90, 100, 110, 120, 130, 140, 150]
ROWS = ("daily", "minute", "grid", "ticks", "memory")


def _timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """The best of ``repeat`` wall times, and the last result."""
    wall, _, out = _timed_cpu(fn, repeat)
    return wall, out


def _timed_cpu(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, float, Any]:
    """The best of ``repeat`` wall times, the best of their CPU times (this process: on shared
    cores the fairer figure for a single-process engine), and the last result."""
    wall = cpu = float("inf")
    out = None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        cpu = min(cpu, time.process_time() - start_cpu)
        wall = min(wall, time.perf_counter() - start)
    return wall, cpu, out


def minute_bars(n: int, seed: int = 3) -> pl.DataFrame:
    """``n`` one-minute bars of a seeded random walk (prices in ticks), as bar events."""
    rng = np.random.default_rng(seed)
    close = np.maximum(np.round(100 * PRICE_SCALE * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))), 1)
    close = close.astype(np.int64)
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 5e-4, n)) * close
    high = np.maximum(open_, close) + spread.astype(np.int64)
    low = np.maximum(np.minimum(open_, close) - spread.astype(np.int64), 1)
    volume = rng.integers(100, 10_000, n)
    ts = 1_500_000_000 * 10**9 + np.arange(n, dtype=np.int64) * 60 * 10**9
    return pl.DataFrame(
        {
            "ts": ts,
            "symbol": ["SYN"] * n,
            "kind": ["bar"] * n,
            "price": close,
            "size": volume,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


def _pandas_ohlc(events: pl.DataFrame) -> Any:
    import pandas as pd

    frame = events.select(
        pl.from_epoch("ts", time_unit="ns").alias("Date"),
        *(
            (pl.col(c) / PRICE_SCALE).alias(c.capitalize())
            for c in ("open", "high", "low", "close")
        ),
        pl.col("volume").cast(pl.Float64).alias("Volume"),
    ).to_pandas()
    return pd.DataFrame(frame.set_index("Date"))


def _sma(values: Any, n: int) -> Any:
    out = np.full(len(values), np.nan)
    c = np.cumsum(np.asarray(values, dtype=float))
    out[n - 1 :] = (c[n - 1 :] - np.concatenate([[0.0], c[:-n]])) / n
    return out


class SmaCross(PeerStrategy):  # type: ignore[misc]
    """The same rules in backtesting.py (module level: its optimize pickles the class)."""

    fast = FAST
    slow = SLOW

    def init(self) -> None:
        self.f = self.I(_sma, self.data.Close, self.fast)
        self.s = self.I(_sma, self.data.Close, self.slow)

    def next(self) -> None:
        if self.f[-1] > self.s[-1] and not self.position:
            self.buy(size=QUANTITY)
        elif self.f[-1] < self.s[-1] and self.position:
            self.position.close()


def _peer(ohlc: Any) -> Any:
    # the crossover takes the feedback context, so its backtest fills on the paper venue: a
    # bar's liquidity is its volume at its close (zcbench.venue.paper)
    return Backtest(ohlc, SmaCross, cash=CASH, commission=FEE_BPS / 10_000, trade_on_close=True)


def _row(label: str, ours: float, peer: float, bars: int, note: str = "") -> str:
    return (
        f"  {label:<38} zcbench {ours * 1e6 / bars:7.2f} us/bar ({ours:7.3f} s)   "
        f"backtesting.py {peer * 1e6 / bars:7.2f} us/bar ({peer:7.3f} s)   "
        f"ratio {ours / peer:5.2f} (target <= 1){note}"
    )


def crossover(label: str, events: pl.DataFrame, repeat: int) -> None:
    config = BacktestConfig(count=1, fee_bps=FEE_BPS, initial_cash=CASH)
    params = {"fast": FAST, "slow": SLOW, "quantity": QUANTITY}
    ohlc = _pandas_ohlc(events)
    t_ours = c_ours = t_peer = c_peer = float("inf")
    for _ in range(repeat):  # taking turns: a change of load on shared cores hits both
        t, c, result = _timed_cpu(
            lambda: run_backtest(make_strategy(MACrossover, params), events, config)
        )
        t_ours, c_ours = min(t_ours, t), min(c_ours, c)
        t, c, stats = _timed_cpu(lambda: _peer(ohlc).run())
        t_peer, c_peer = min(t_peer, t), min(c_peer, c)
    fills = result.fills.filter(pl.col("status") == "filled").height
    peer_fills = 2 * len(stats["_trades"])  # each closed trade is two fills
    if stats["_trades"].size and stats["_strategy"].position:  # pragma: no cover
        peer_fills += 1
    print(_row(label, t_ours, t_peer, events.height, f"   fills {fills} and {peer_fills}"))
    print(_row("  the same in CPU time", c_ours, c_peer, events.height))


def grid(events: pl.DataFrame, quick: bool) -> None:
    config = BacktestConfig(count=1, fee_bps=FEE_BPS, initial_cash=CASH)
    fast = GRID_FAST[:2] if quick else GRID_FAST
    slow = GRID_SLOW[:2] if quick else GRID_SLOW
    points = len(fast) * len(slow)
    t_ours, table = _timed(
        lambda: sweep(
            MACrossover,
            {"fast": fast, "slow": slow},
            events,
            config,
            base_params={"quantity": QUANTITY},
            show_progress=False,
            serial=True,
        )
    )
    bt = _peer(_pandas_ohlc(events))
    t_peer, _ = _timed(lambda: bt.optimize(fast=fast, slow=slow, maximize="Equity Final [$]"))
    print(
        f"  {points}-point grid on MSFT ({os.cpu_count()} cores)   zcbench serial {t_ours:7.2f} s"
        f"   backtesting.py optimize {t_peer:7.2f} s   ratio {t_ours / t_peer:5.2f} "
        f"(target <= 1; {table.height} rows)"
    )


def ticks(quick: bool) -> None:
    cfg = SyntheticConfig(duration_s=2.0) if quick else SyntheticConfig()
    events = generate_ticks(cfg, seed=7)
    config = BacktestConfig(width_ns=100_000_000, fee_bps=0.2)
    fields = OrderFlowImbalance.fields()
    cut = list(batches(events, fields, width_ns=config.width_ns))

    def bare() -> None:
        strategy = make_strategy(OrderFlowImbalance)
        for b in cut:
            strategy.on_batch(b)

    t_bare, _ = _timed(bare, 3)
    t_full, _ = _timed(lambda: run_backtest(make_strategy(OrderFlowImbalance), events, config), 3)
    t_prep, data = _timed(lambda: prepare(events, fields, config.spec), 3)
    t_run, _ = _timed(lambda: run_prepared(make_strategy(OrderFlowImbalance), data, config), 3)
    n = events.height
    print(f"  tick example: {n:,} events, {len(cut):,} batches of 100 ms")
    print(f"  {'bare on_batch loop (baseline)':<44} {n / t_bare:>12,.0f} events/s")
    print(
        f"  {'backtest end to end':<44} {n / t_full:>12,.0f} events/s   "
        f"{t_bare / t_full:5.2f} of the baseline's speed (target >= 0.8)"
    )
    print(f"  {'  of which prepare (validate, cut, codec)':<44} {t_prep * 1e3:9.1f} ms")
    print(f"  {'  of which replay, fills, metrics':<44} {t_run * 1e3:9.1f} ms")


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(n: int) -> None:
    """In a fresh process: the peak resident memory a backtest of ``n`` bars adds."""
    config = BacktestConfig(count=1, fee_bps=FEE_BPS, initial_cash=CASH)
    strategy = make_strategy(MACrossover, {"quantity": QUANTITY})
    run_backtest(strategy, minute_bars(1_000), config)  # every module and code path loaded
    events = minute_bars(n)
    size = events.estimated_size()
    base = _rss()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    result = run_backtest(make_strategy(MACrossover, {"quantity": QUANTITY}), events, config)
    took = time.perf_counter() - started
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _rss())
    added = peak[0] - base
    print(
        f"  {n:,}-bar backtest: {took:.2f} s; input frame {size / 2**20:.0f} MiB, "
        f"peak added {added / 2**20:.0f} MiB = {added / size:.2f}x the frame "
        f"(frame + added {(size + added) / size:.2f}x; target under 3x); "
        f"{result.equity.height:,} equity rows"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument(
        "--rows",
        default=",".join(ROWS),
        help=f"comma-separated rows to run, of {', '.join(ROWS)} (default: all)",
    )
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rows = set(args.rows.split(","))
    if not rows <= set(ROWS):
        parser.error(
            f"--rows: unknown {', '.join(sorted(rows - set(ROWS)))}; known: {', '.join(ROWS)}"
        )
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    warnings.simplefilter("ignore")  # backtesting.py warns about its own progress display
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    msft = load_ohlcv(sample_daily_path())
    repeat = 1 if args.quick else 5
    if rows & {"daily", "minute"}:
        print("\ndaily crossover, one bar per batch, the same rules in both")
    if "daily" in rows:
        crossover(f"MSFT daily, {msft.height:,} bars", msft, repeat)
    if "minute" in rows:
        n = 10_000 if args.quick else 100_000
        crossover(f"one-minute bars, {n:,}", minute_bars(n), repeat)
    if "grid" in rows:
        print("\nparameter grid, MACrossover fast x slow")
        grid(msft, args.quick)
    if "ticks" in rows:
        print("\ntick example against its own loop")
        ticks(args.quick)
    if "memory" in rows:
        print("\nmemory")
        bars = 20_000 if args.quick else 1_000_000
        subprocess.run(
            [sys.executable, __file__, "--memory-child", str(bars)], check=True, env=os.environ
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
