"""The seeded synthetic tick generator: trades and top-of-book quotes for several symbols.

The model, per symbol, on a price grid of ``grid_ticks`` ticks:

- **arrivals**: exponential gaps at ``rate`` events/s on average, with **bursts**: blocks of
  ``burst_block`` events that, with probability ``burst_prob``, arrive ``burst_factor`` times
  faster; the gaps are then scaled so the whole stream spans ``duration_s`` exactly;
- **mid price**: a random walk (rounded Gaussian steps of ``step_sigma`` grid units per event)
  with **jumps** (probability ``jump_prob`` per event, Gaussian size ``jump_sigma``), reflected
  above ``min_price``;
- **order flow**: each trade is buyer- or seller-initiated; the sign persists from one trade to
  the next with probability ``flow_persistence`` and a trade moves the mid one grid unit its way
  with probability ``impact_prob`` (after it prints), so order-flow imbalance carries a little
  information, as in real markets;
- **spread** of ``1 + Geometric`` grid units; trades print at the ask (buys) or the bid (sells);
  **sizes** are whole lots drawn from geometric distributions.

Everything is vectorised numpy drawn from one ``numpy.random.Generator`` in a fixed order, so a
seed gives the same events on every machine and the generator runs at millions of events/s.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from zcbench.errors import UsageError
from zcbench.marketdata._load import normalise_events
from zcbench.strategy import PRICE_SCALE

__all__ = ["SyntheticConfig", "generate_ticks", "write_ticks"]

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SyntheticConfig:
    """Parameters of the synthetic tick model (module docstring); all have sensible defaults."""

    symbols: tuple[str, ...] = ("AAA", "BBB", "CCC")
    rate: float = 20_000.0
    duration_s: float = 10.0
    start_ns: int = 1_704_186_000 * _NS  # 2024-01-02 09:00 UTC
    base_price: float = 100.0
    grid_ticks: int = 100  # one cent at PRICE_SCALE 10_000
    min_price: float = 1.0
    trade_fraction: float = 0.3
    step_sigma: float = 0.35
    jump_prob: float = 0.0002
    jump_sigma: float = 25.0
    flow_persistence: float = 0.85
    impact_prob: float = 0.25
    spread_p: float = 0.6
    lot: int = 100
    trade_size_p: float = 0.35
    quote_size_p: float = 0.15
    burst_prob: float = 0.05
    burst_factor: float = 10.0
    burst_block: int = 256

    def __post_init__(self) -> None:
        checks = [
            (len(self.symbols) > 0 and all(self.symbols), "symbols must be non-empty names"),
            (len(set(self.symbols)) == len(self.symbols), "symbols must be distinct"),
            (_positive(self.rate), f"rate must be a positive number of events/s, got {self.rate}"),
            (
                _positive(self.duration_s),
                f"duration_s must be a positive number of seconds, got {self.duration_s}",
            ),
            (self.rate * self.duration_s <= 50_000_000, "at most 50,000,000 events per call"),
            (self.base_price > self.min_price > 0, "need base_price > min_price > 0"),
            (self.grid_ticks >= 1 and self.lot >= 1, "grid_ticks and lot must be >= 1"),
            (0 <= self.trade_fraction <= 1, "trade_fraction must be in [0, 1]"),
            (0 <= self.flow_persistence <= 1, "flow_persistence must be in [0, 1]"),
            (0 <= self.impact_prob <= 1 and 0 <= self.jump_prob <= 1, "probabilities in [0, 1]"),
            (0 <= self.burst_prob <= 1 and self.burst_factor >= 1, "bursts: prob, factor >= 1"),
            (self.burst_block >= 1, "burst_block must be >= 1"),
            (
                all(0 < p <= 1 for p in (self.spread_p, self.trade_size_p, self.quote_size_p)),
                "geometric parameters must be in (0, 1]",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(f"synthetic data: {message}")

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON-able values."""
        out = asdict(self)
        out["symbols"] = list(self.symbols)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SyntheticConfig:
        """A configuration from plain values (as :meth:`to_dict` or a JSON file gives them)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(
                f"synthetic data: unknown settings {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        given = dict(values)
        if "symbols" in given:
            given["symbols"] = tuple(given["symbols"])
        try:
            return cls(**given)
        except TypeError:
            raise UsageError("synthetic data: a setting has a value of the wrong kind") from None

    @classmethod
    def from_file(cls, path: str | Path) -> SyntheticConfig:
        """A configuration from a JSON file of settings (unset ones keep their defaults)."""
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: not a readable JSON file ({exc})") from None
        if not isinstance(values, dict):
            raise UsageError(f"{path}: expected a JSON object of settings")
        return cls.from_dict(values)

    @property
    def n_events(self) -> int:
        """How many events :func:`generate_ticks` produces."""
        return max(1, round(self.rate * self.duration_s))


def _positive(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _timestamps(cfg: SyntheticConfig, rng: np.random.Generator, n: int) -> np.ndarray[Any, Any]:
    gaps = rng.exponential(1.0, n)
    blocks = -(-n // cfg.burst_block)
    burst = rng.random(blocks) < cfg.burst_prob
    speed = np.where(burst, cfg.burst_factor, 1.0).repeat(cfg.burst_block)[:n]
    gaps /= speed
    span = cfg.duration_s * _NS
    offsets = np.floor(np.cumsum(gaps) * (span / gaps.sum())).astype(np.int64)
    # strictly increasing: no two events share a nanosecond
    steps = np.arange(n, dtype=np.int64)
    offsets = np.maximum.accumulate(offsets - steps) + steps
    out: np.ndarray[Any, Any] = cfg.start_ns + offsets
    return out


def generate_ticks(config: SyntheticConfig, *, seed: int) -> pl.DataFrame:
    """``config.n_events`` trade and quote events, sorted by ``ts``, every schema column.

    Deterministic for ``(config, seed)``. Prices are in ticks on the ``grid_ticks`` grid.
    """
    cfg = config
    rng = np.random.default_rng(np.random.PCG64(seed))
    n = cfg.n_events
    ts = _timestamps(cfg, rng, n)
    n_sym = len(cfg.symbols)
    sym = rng.integers(0, n_sym, n).astype(np.int64)
    is_trade = rng.random(n) < cfg.trade_fraction
    step = np.rint(rng.normal(0.0, cfg.step_sigma, n)).astype(np.int64)
    jump = np.where(
        rng.random(n) < cfg.jump_prob, np.rint(rng.normal(0.0, cfg.jump_sigma, n)), 0
    ).astype(np.int64)
    flips = rng.random(n) >= cfg.flow_persistence
    first_sign = rng.random(n_sym) < 0.5
    impact_draw = rng.random(n) < cfg.impact_prob
    spread = rng.geometric(cfg.spread_p, n).astype(np.int64)
    trade_size = rng.geometric(cfg.trade_size_p, n).astype(np.int64) * cfg.lot
    bid_size = rng.geometric(cfg.quote_size_p, n).astype(np.int64) * cfg.lot
    ask_size = rng.geometric(cfg.quote_size_p, n).astype(np.int64) * cfg.lot

    mid = np.empty(n, dtype=np.int64)
    sign = np.zeros(n, dtype=np.int64)
    lo = round(cfg.min_price * PRICE_SCALE / cfg.grid_ticks)
    for k in range(n_sym):
        rows = np.flatnonzero(sym == k)
        trades = is_trade[rows]
        # trade signs: a Markov chain over this symbol's trades
        flip = np.where(flips[rows][trades], -1, 1)
        flip[:1] = -1 if first_sign[k] else 1
        s = np.zeros(rows.size, dtype=np.int64)
        s[trades] = np.cumprod(flip)
        impact = np.where(impact_draw[rows] & trades, s, 0)
        base = round(cfg.base_price * (1 + 0.5 * k) * PRICE_SCALE / cfg.grid_ticks)
        # the walk moves at each event; a trade's own impact shows from the next event on
        walk = base + np.cumsum(step[rows] + jump[rows]) + np.cumsum(impact) - impact
        walk = np.where(walk < lo, 2 * lo - walk, walk)
        mid[rows] = np.maximum(walk, lo)
        sign[rows] = s
    bid = (mid - spread // 2) * cfg.grid_ticks
    bid = np.maximum(bid, cfg.grid_ticks)
    ask = bid + spread * cfg.grid_ticks
    price = np.where(sign > 0, ask, bid)

    trade = pl.Series("t", is_trade)
    frame = pl.DataFrame(
        {
            "ts": pl.Series(ts, dtype=pl.Int64),
            "symbol": pl.Series(sym).replace_strict(
                list(range(n_sym)), list(cfg.symbols), return_dtype=pl.String
            ),
            "kind": pl.Series(is_trade).replace_strict(
                [True, False], ["trade", "quote"], return_dtype=pl.String
            ),
            "price": price,
            "size": trade_size,
            "bid": bid,
            "ask": ask,
            "bid_size": bid_size,
            "ask_size": ask_size,
        }
    ).with_columns(
        pl.when(trade).then(pl.col("price", "size")),
        pl.when(~trade).then(pl.col("bid", "ask", "bid_size", "ask_size")),
    )
    return normalise_events(frame, source="synthetic")


def write_ticks(config: SyntheticConfig, path: str | Path, *, seed: int) -> Path:
    """Generate ticks and write them to a parquet file; returns the path."""
    path = Path(path)
    generate_ticks(config, seed=seed).write_parquet(path, compression="zstd", statistics=False)
    return path
