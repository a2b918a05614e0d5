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
_WALK_ROWS: Final = 2_000


def mark_expr(columns: Collection[str]) -> pl.Expr:
    """The rule over a frame with ``columns``, as one expression named ``mark``: the first of
    price, ``(bid + ask) // 2`` (null unless both sides are there) and close that is not null.
    A non-positive value is no mark: :func:`marks` and :func:`last_marks` drop it, and a caller
    of this expression filters ``mark > 0`` (a coalesce is several times cheaper than a
    conditional that would do it here, and the execution layer asks this per batch)."""
    parts: list[pl.Expr] = []
    if "price" in columns:
        parts.append(pl.col("price").cast(pl.Int64))
    if "bid" in columns and "ask" in columns:
        parts.append((pl.col("bid").cast(pl.Int64) + pl.col("ask").cast(pl.Int64)) // 2)
    if "close" in columns:
        parts.append(pl.col("close").cast(pl.Int64))
    if not parts:
        return pl.lit(None, pl.Int64).alias("mark")
    return pl.coalesce(parts).alias("mark")


def marks(frame: pl.DataFrame) -> pl.Series:
    """The mark of each row of ``frame`` (module docstring), as an Int64 series named ``mark``
    (null where the row has none)."""
    if not frame.height:
        return pl.Series("mark", [], dtype=pl.Int64)
    # a column with no value takes no part (a bar stream's bid and ask); when the first that
    # does has a value on every row, it is every row's mark: the column itself, not a copy
    # (a long backtest's marks cost no memory then)
    present = [c for c in MARK_FIELDS
               if c in frame.columns and frame.get_column(c).null_count() < frame.height]
    if not {"bid", "ask"} <= set(present):  # a mid needs both sides
        present = [c for c in present if c not in ("bid", "ask")]
    first = present[0] if present else None
    if first is None:
        return pl.Series("mark", dtype=pl.Int64).extend_constant(None, frame.height)
    if first in ("price", "close") and not frame.get_column(first).null_count():
        found = frame.get_column(first).cast(pl.Int64).alias("mark")
    else:
        found = frame.select(mark_expr(present)).to_series()
    bad = found <= 0
    return found.set(bad, None) if bad.any() else found


def last_marks(frame: pl.DataFrame) -> dict[str, int]:
    """Each symbol's last mark in ``frame`` (symbols without one, and rows without a symbol,
    are absent)."""
    if not frame.height or "symbol" not in frame.columns:
        return {}
    # the dtypes in one call: ``frame.schema`` builds a whole schema each time it is read,
    # which costs more than walking a batch's rows
    dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))
    columns = [c for c in MARK_FIELDS if c in dtypes]
    if frame.height > _WALK_ROWS or any(dtypes[c] != pl.Int64 for c in columns):
        both = frame.select("symbol", mark_expr(frame.columns))
        last = (both.filter((pl.col("mark") > 0) & pl.col("symbol").is_not_null())
                .group_by("symbol", maintain_order=True).last())
        return dict(zip(last.get_column("symbol").to_list(), last.get_column("mark").to_list(),
                        strict=True))
    # a batch: the rule walked newest first in plain Python over the columns' values, where a
    # polars query costs far more than the few rows it reads (tests/marketdata/test_marks.py
    # holds the two to the same marks); a growing chunk at a time from the end, stopping once
    # every symbol (counted by polars, a null not counting) has its mark: a batch's few symbols
    # all appear near its end, and each row read costs a Python step
    symbol_column = frame.get_column("symbol")
    wanted = symbol_column.n_unique() - (1 if symbol_column.null_count() else 0)
    found: dict[str, int] = {}
    end, step = frame.height, 64
    while len(found) < wanted and end > 0:
        start = max(0, end - step)
        chunk = frame if (start, end) == (0, frame.height) else frame.slice(start, end - start)
        values = {c: chunk.get_column(c).to_list() for c in columns}
        price, close = values.get("price"), values.get("close")
        bid, ask = (values["bid"], values["ask"]) if "bid" in values and "ask" in values else (
            None, None)
        symbols = chunk.get_column("symbol").to_list()
        for i in range(len(symbols) - 1, -1, -1):
            symbol = symbols[i]
            if symbol is None or symbol in found:
                continue
            value = price[i] if price is not None else None  # the first field there, then > 0
            if value is None and bid is not None and ask is not None:
                b, a = bid[i], ask[i]
                value = (b + a) // 2 if b is not None and a is not None else None
            if value is None and close is not None:
                value = close[i]
            if value is not None and value > 0:
                found[symbol] = value
                if len(found) == wanted:  # every symbol has its mark: the rest is older
                    break
        end, step = start, step * 4
    return dict(reversed(found.items()))
