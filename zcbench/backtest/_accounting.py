"""Fills, positions and the equity curve, in exact integer ticks.

The fills model: a signal emitted on a batch fills at the **next event of its symbol after that
batch** that carries a price on the right side: a trade's price, a quote's ask (buys) or bid
(sells), a bar's open. Slippage moves that price ``slippage_ticks`` against the order; a limit
price the slipped price would breach leaves the order unfilled; the fee is ``fee_bps`` of the
notional, rounded up to a whole tick. No event after the batch: unfilled. Orders never wait:
whatever does not fill at that one event is dropped (the status says why).

Marks (for equity): a trade's price, a quote's integer mid ``(bid + ask) // 2``, a bar's close.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

import numpy as np
import polars as pl

from zcbench.errors import DataError, UsageError
from zcbench.strategy import PRICE_SCALE

__all__ = ["FillModel", "Ledger", "book"]

FILLED: Final = "filled"
NO_NEXT_EVENT: Final = "no_next_event"
LIMIT: Final = "limit_not_reached"
_MAX_NOTIONAL: Final = 2**53  # int64 ledgers, with room for sums; ~9e11 currency units


@dataclass(frozen=True, slots=True)
class FillModel:
    """How orders fill: next-event price, ``slippage_ticks`` against, ``fee_bps`` of notional."""

    slippage_ticks: int = 0
    fee_bps: float = 0.0

    def __post_init__(self) -> None:
        if type(self.slippage_ticks) is not int or self.slippage_ticks < 0:
            raise UsageError(f"slippage_ticks must be an int >= 0, got {self.slippage_ticks!r}")
        if not (isinstance(self.fee_bps, (int, float)) and 0 <= self.fee_bps < 10_000):
            raise UsageError(f"fee_bps must be in [0, 10000), got {self.fee_bps!r}")

    @property
    def fee_rate(self) -> Fraction:
        """``fee_bps`` as an exact fraction of notional (from its decimal text: 0.1 is 1/10)."""
        return Fraction(str(self.fee_bps)) / 10_000

    def fee(self, notional: int, rate: Fraction | None = None) -> int:
        """The fee on ``notional`` ticks, exact and rounded up (no float on the money path)."""
        return math.ceil(notional * (self.fee_rate if rate is None else rate))


@dataclass(frozen=True, slots=True)
class Ledger:
    """What the accounting produced: the orders with their fills, positions, equity curve."""

    fills: pl.DataFrame
    positions: pl.DataFrame
    equity: pl.DataFrame
    closing_pnls: list[Fraction]
    traded_notional: int
    fees: int


def _side_prices(events: pl.DataFrame) -> tuple[np.ndarray[Any, Any], ...]:
    kind = pl.col("kind")
    frame = events.select(
        pl.when(kind == "trade")
        .then(pl.col("price"))
        .when(kind == "quote")
        .then(pl.col("ask"))
        .when(kind == "bar")
        .then(pl.col("open"))
        .fill_null(0)
        .alias("buy"),
        pl.when(kind == "trade")
        .then(pl.col("price"))
        .when(kind == "quote")
        .then(pl.col("bid"))
        .when(kind == "bar")
        .then(pl.col("open"))
        .fill_null(0)
        .alias("sell"),
        pl.when(kind == "trade")
        .then(pl.col("price"))
        .when(kind == "quote")
        .then((pl.col("bid") + pl.col("ask")) // 2)
        .when(kind == "bar")
        .then(pl.col("close"))
        .fill_null(0)
        .alias("mark"),
    )
    return tuple(frame.get_column(c).to_numpy().astype(np.int64) for c in ("buy", "sell", "mark"))


def _price_index(
    codes: np.ndarray[Any, Any], prices: np.ndarray[Any, Any], code: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The rows of one symbol (by code) that carry a price, and those prices."""
    rows = np.flatnonzero((codes == code) & (prices > 0))
    return rows, prices[rows]


def book(
    events: pl.DataFrame,
    signals: pl.DataFrame,
    batch_ends: np.ndarray[Any, Any],
    model: FillModel,
    initial_cash: int,
) -> Ledger:
    """Fill ``signals`` against ``events`` and account for them.

    ``signals`` has ``seq, idx, symbol, side, quantity, limit_price, end_row`` (``end_row``: the
    row after the signal's batch); ``batch_ends[i]`` is that row for batch ``i``.
    """
    buy_px, sell_px, mark_px = _side_prices(events)
    ts = events.get_column("ts").to_numpy()
    # symbols as small integers: comparing an object array of strings costs ~50x more
    symbol_col = events.get_column("symbol")
    names: list[str] = symbol_col.unique(maintain_order=True).to_list()
    code_of = {name: i for i, name in enumerate(names)}
    codes = symbol_col.replace_strict(names, range(len(names)), return_dtype=pl.Int32).to_numpy()
    index: dict[tuple[str, str], tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}

    def lookup(symbol: str, which: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        key = (symbol, which)
        if key not in index:
            px = {"buy": buy_px, "sell": sell_px, "mark": mark_px}[which]
            index[key] = _price_index(codes, px, code_of.get(symbol, -1))
        return index[key]

    rate = model.fee_rate
    rows_out: list[dict[str, Any]] = []
    for sig in signals.iter_rows(named=True):
        rows, prices = lookup(sig["symbol"], sig["side"])
        j = int(np.searchsorted(rows, sig["end_row"], side="left"))
        out = {
            "seq": sig["seq"],
            "idx": sig["idx"],
            "symbol": sig["symbol"],
            "side": sig["side"],
            "quantity": sig["quantity"],
            "limit_price": sig["limit_price"],
            "status": NO_NEXT_EVENT,
            "fill_row": None,
            "fill_ts": None,
            "fill_price": None,
            "notional": None,
            "fee": None,
        }
        if j < rows.size:
            ref = int(prices[j])
            sign = 1 if sig["side"] == "buy" else -1
            price = max(1, ref + sign * model.slippage_ticks)
            limit = sig["limit_price"]
            if limit is not None and (price - limit) * sign > 0:
                out["status"] = LIMIT
            else:
                notional = price * sig["quantity"]
                if notional > _MAX_NOTIONAL:
                    raise DataError(
                        f"signal {sig['idx']} of batch {sig['seq']}: {sig['quantity']} units at "
                        f"{price} ticks exceeds the largest notional the ledger holds "
                        f"({_MAX_NOTIONAL} ticks)"
                    )
                out.update(
                    status=FILLED,
                    fill_row=int(rows[j]),
                    fill_ts=int(ts[rows[j]]),
                    fill_price=price,
                    notional=notional,
                    fee=model.fee(notional, rate),
                )
        rows_out.append(out)
    fills = pl.DataFrame(
        rows_out,
        schema={
            "seq": pl.Int64,
            "idx": pl.Int64,
            "symbol": pl.String,
            "side": pl.String,
            "quantity": pl.Int64,
            "limit_price": pl.Int64,
            "status": pl.String,
            "fill_row": pl.Int64,
            "fill_ts": pl.Int64,
            "fill_price": pl.Int64,
            "notional": pl.Int64,
            "fee": pl.Int64,
        },
    )
    filled = fills.filter(pl.col("status") == FILLED).sort("fill_row", "seq", "idx")
    positions, closing = _positions(filled)
    equity = _equity(filled, batch_ends, ts, lookup, initial_cash)
    return Ledger(
        fills=fills,
        positions=positions,
        equity=equity,
        closing_pnls=closing,
        traded_notional=int(filled.get_column("notional").sum() or 0),
        fees=int(filled.get_column("fee").sum() or 0),
    )


def _positions(filled: pl.DataFrame) -> tuple[pl.DataFrame, list[Fraction]]:
    """Position after each fill, average cost and realised PnL (average-cost method)."""
    qty: dict[str, int] = {}
    cost: dict[str, Fraction] = {}  # signed cost basis of the open position, in ticks
    realised: dict[str, Fraction] = {}
    closing: list[Fraction] = []
    rows: list[dict[str, Any]] = []
    for f in filled.iter_rows(named=True):
        sym, q = f["symbol"], f["quantity"] * (1 if f["side"] == "buy" else -1)
        price = f["fill_price"]
        pos, basis = qty.get(sym, 0), cost.get(sym, Fraction(0))
        pnl = Fraction(0)
        if pos != 0 and (pos > 0) != (q > 0):  # this fill reduces (and maybe flips) the position
            closed = min(abs(q), abs(pos))
            avg = basis / pos
            pnl = (price - avg) * closed * (1 if pos > 0 else -1)
            closing.append(pnl)
            basis -= avg * closed * (1 if pos > 0 else -1)
            pos += closed * (1 if q > 0 else -1)
            q += closed * (-1 if q > 0 else 1)
        basis += Fraction(price * q)
        pos += q
        if pos == 0:
            basis = Fraction(0)
        qty[sym], cost[sym] = pos, basis
        realised[sym] = realised.get(sym, Fraction(0)) + pnl
        rows.append(
            {
                "fill_ts": f["fill_ts"],
                "seq": f["seq"],
                "symbol": sym,
                "position": pos,
                "avg_cost": float(basis / pos) / PRICE_SCALE if pos else None,
                "realised_pnl": float(realised[sym]) / PRICE_SCALE,
            }
        )
    frame = pl.DataFrame(
        rows,
        schema={
            "fill_ts": pl.Int64,
            "seq": pl.Int64,
            "symbol": pl.String,
            "position": pl.Int64,
            "avg_cost": pl.Float64,
            "realised_pnl": pl.Float64,
        },
    )
    return frame, closing


def _equity(
    filled: pl.DataFrame,
    batch_ends: np.ndarray[Any, Any],
    ts: np.ndarray[Any, Any],
    lookup: Any,
    initial_cash: int,
) -> pl.DataFrame:
    """Cash, position value and equity (ticks) after each batch, marked at its last event."""
    ends = np.asarray(batch_ends, dtype=np.int64)
    fill_rows = filled.get_column("fill_row").to_numpy().astype(np.int64)
    signed = np.where(filled.get_column("side").to_numpy() == "buy", 1, -1)
    qty = filled.get_column("quantity").to_numpy().astype(np.int64) * signed
    notional = filled.get_column("notional").to_numpy().astype(np.int64)
    fees = filled.get_column("fee").to_numpy().astype(np.int64)
    cash_delta = -signed * notional - fees
    upto = np.searchsorted(fill_rows, ends, side="left")  # fills strictly before each end
    cash_cum = np.concatenate([[0], np.cumsum(cash_delta)])
    cash = initial_cash + cash_cum[upto]
    value = np.zeros(ends.size, dtype=np.int64)
    fill_symbols = filled.get_column("symbol").to_numpy()
    for sym in sorted(set(fill_symbols.tolist())):
        mine = fill_symbols == sym
        rows_s = fill_rows[mine]
        pos_cum = np.concatenate([[0], np.cumsum(qty[mine])])
        pos = pos_cum[np.searchsorted(rows_s, ends, side="left")]
        mark_rows, marks = lookup(sym, "mark")
        k = np.searchsorted(mark_rows, ends, side="left") - 1
        mark = np.where(k >= 0, marks[np.maximum(k, 0)], 0)
        value += pos * mark
    end_ts = ts[ends - 1] if ends.size else np.zeros(0, dtype=np.int64)
    return pl.DataFrame(
        {
            "seq": pl.Series(np.arange(ends.size, dtype=np.int64)),
            "ts": pl.Series(end_ts, dtype=pl.Int64),
            "cash": pl.Series(cash, dtype=pl.Int64),
            "position_value": pl.Series(value, dtype=pl.Int64),
            "equity": pl.Series(cash + value, dtype=pl.Int64),
        }
    ).with_columns((pl.col("equity") / PRICE_SCALE).alias("equity_ccy"))
