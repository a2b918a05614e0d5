"""The event schema every source normalises to and every strategy reads.

Prices are integer ticks of ``1 / PRICE_SCALE`` currency units and sizes are integer units, so
that strategies can stay in exact integer arithmetic: float reductions whose order depends on
thread count are the classic way a backtest and a live run drift apart.
"""

from __future__ import annotations

from typing import Final

import polars as pl

__all__ = ["EVENT_SCHEMA", "KINDS", "PRICE_SCALE", "REQUIRED_FIELDS", "price_to_ticks"]

PRICE_SCALE: Final = 10_000
"""Ticks per currency unit: a price of 101.25 is 1_012_500 ticks."""

KINDS: Final = ("trade", "quote", "bar")
"""Event kinds: a trade print, a top-of-book quote, an OHLCV bar."""

EVENT_SCHEMA: Final[dict[str, type[pl.DataType]]] = {
    "ts": pl.Int64,  # event time, nanoseconds since the Unix epoch, UTC
    "symbol": pl.String,
    "kind": pl.String,  # one of KINDS
    "price": pl.Int64,  # trade price, or a bar's close (ticks)
    "size": pl.Int64,  # trade size, or a bar's volume
    "bid": pl.Int64,
    "ask": pl.Int64,
    "bid_size": pl.Int64,
    "ask_size": pl.Int64,
    "open": pl.Int64,
    "high": pl.Int64,
    "low": pl.Int64,
    "close": pl.Int64,
    "volume": pl.Int64,
}
"""Every field an event may carry, with its type. Fields that do not apply to a kind are null."""

REQUIRED_FIELDS: Final = ("ts", "symbol")
"""Fields every batch carries whatever the strategy declares."""


def price_to_ticks(price: float) -> int:
    """A decimal price as integer ticks, rounded half away from zero."""
    scaled = abs(price) * PRICE_SCALE
    ticks = int(scaled + 0.5)
    return ticks if price >= 0 else -ticks
