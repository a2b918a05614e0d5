"""The market price of an event (its *mark*): the one rule PnL is measured by.

An event's mark is its trade price when it has one, else its quote's integer mid
``(bid + ask) // 2`` when it has both sides, else its bar's close; an event with none of them,
or with a mark that is not positive, has no mark (null). The rule reads only which fields an
event carries, never its ``kind``, because a live batch carries only the fields its strategy
declared. The live execution layer (its last prices and the PnL), the backtest's equity and
buying-power checks, the verified tear sheet and the live panel's price chart all take their
marks from here, so the same events are valued the same way on every surface.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

import polars as pl

__all__ = ["MARK_FIELDS", "last_marks", "mark_expr", "marks"]

MARK_FIELDS: Final = ("price", "bid", "ask", "close")
"""The fields an event's mark may be read from."""


def mark_expr(columns: Collection[str]) -> pl.Expr:
    """The mark of each row (Int64, null where there is none) of a frame with ``columns``."""
    mark = pl.lit(None, pl.Int64)
    if "close" in columns:
        mark = pl.col("close").cast(pl.Int64)
    if "bid" in columns and "ask" in columns:
        mid = (pl.col("bid").cast(pl.Int64) + pl.col("ask").cast(pl.Int64)) // 2
        both = pl.col("bid").is_not_null() & pl.col("ask").is_not_null()
        mark = pl.when(both).then(mid).otherwise(mark)
    if "price" in columns:
        mark = pl.when(pl.col("price").is_not_null()).then(
            pl.col("price").cast(pl.Int64)).otherwise(mark)
    return pl.when(mark > 0).then(mark).otherwise(None).alias("mark")


def marks(frame: pl.DataFrame) -> pl.Series:
    """The mark of each row of ``frame`` (module docstring), as an Int64 series named ``mark``."""
    if not frame.height:
        return pl.Series("mark", [], dtype=pl.Int64)
    return frame.select(mark_expr(frame.columns)).to_series()


def last_marks(frame: pl.DataFrame) -> dict[str, int]:
    """Each symbol's last mark in ``frame`` (symbols without one are absent)."""
    if "symbol" not in frame.columns or not frame.height:
        return {}
    found = (
        frame.select("symbol", mark_expr(frame.columns))
        .drop_nulls()
        .group_by("symbol", maintain_order=True)
        .last()
    )
    return dict(zip(found.get_column("symbol").to_list(),
                    found.get_column("mark").to_list(), strict=True))
