"""Fills, capital, positions, round-trip trades and the equity curve, in exact integers.

Two ways in, one accountant (``_Books``): :func:`book_executions` counts what the closed
loop's paper venue did (the venue model of ``zcbench.backtest._engine``: the journal's fills,
nothing decided here), :func:`book` fills signals by the next-event model below. Both hand
each fill, in the order it happened, to ``_Books``: cash, positions at average cost, realised
PnL, the round trips and the equity curve after each batch.

The next-event model: a signal emitted on a batch fills at the **next event of its symbol after that
batch** that carries a price on the right side: a trade's price, a quote's ask (buys) or bid
(sells), a bar's open. Slippage moves that price ``slippage_ticks`` against the order; a limit
price the slipped price would breach leaves the order unfilled; the fee is ``fee_bps`` of the
notional, rounded up to a whole unit of money. No event after the batch: unfilled. Orders never
wait: whatever does not fill at that one event is dropped (the status says why).

Capital binds: orders are taken in the order they would fill (fill row, then batch, then place
in the batch), and each is checked by :func:`zcbench.risk.buying_power_refusal`, the rule the
live execution layer applies, with the account as it stands at that moment (cash, every open
position at its last mark, this symbol at the fill price). A refused order has status
``refused`` and the rule's name in ``reason``; cash never goes below zero unless the buying
power allows leverage (or a short loses more than the equity: no liquidation is modelled). An
order whose quantity is not a whole number of the instrument's lots is refused (``lot_size``).

Money: a symbol's prices are integers of its own price unit; the account's unit of money is the
finest of them, and ``units[symbol]`` says how many account units one price unit is (1 when
every symbol shares the schema's ``PRICE_SCALE``). Marks (for equity and buying power) follow the
one market-price rule the live run and the tear sheet use (:func:`zcbench.marketdata.marks`:
a trade's price, else a quote's integer mid ``(bid + ask) // 2``, else a bar's close).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

import numpy as np
import polars as pl

from zcbench.errors import DataError, UsageError
from zcbench.marketdata import MARK_FIELDS
from zcbench.marketdata import marks as mark_series
from zcbench.risk import LIMIT_NOT_REACHED, BuyingPower, buying_power_refusal

__all__ = [
    "FILLS_SCHEMA",
    "POSITIONS_SCHEMA",
    "TRADES_SCHEMA",
    "FillModel",
    "Ledger",
    "book",
    "book_executions",
]

FILLED: Final = "filled"
REFUSED: Final = "refused"
NO_NEXT_EVENT: Final = "no_next_event"
LOT_SIZE: Final = "lot_size"
LIMIT: Final = LIMIT_NOT_REACHED
_MAX_NOTIONAL: Final = 2**53  # int64 ledgers, with room for sums
_CHUNK: Final = 65_536  # batches whose equity is worked out at once

FILLS_SCHEMA: Final[dict[str, Any]] = {
    "seq": pl.Int64,
    "idx": pl.Int64,
    "symbol": pl.String,
    "side": pl.String,
    "quantity": pl.Int64,
    "limit_price": pl.Int64,
    "status": pl.String,
    "reason": pl.String,
    "filled_quantity": pl.Int64,
    "fill_row": pl.Int64,
    "fill_ts": pl.Int64,
    "fill_price": pl.Int64,
    "notional": pl.Int64,
    "fee": pl.Int64,
    "cash_after": pl.Int64,
}

POSITIONS_SCHEMA: Final[dict[str, Any]] = {
    "fill_ts": pl.Int64,
    "seq": pl.Int64,
    "symbol": pl.String,
    "position": pl.Int64,
    "avg_cost": pl.Float64,
    "realised_pnl": pl.Float64,
}

TRADES_SCHEMA: Final[dict[str, Any]] = {
    "symbol": pl.String,
    "direction": pl.String,
    "entry_ts": pl.Int64,
    "exit_ts": pl.Int64,
    "quantity": pl.Int64,
    "entry_price": pl.Float64,
    "exit_price": pl.Float64,
    "pnl": pl.Float64,
    "return": pl.Float64,
    "fees": pl.Float64,
    "duration_s": pl.Float64,
}


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

    def fee_of(self) -> Callable[[int], int]:
        """:meth:`fee` with the rate worked out once (what the execution layer calls per fill)."""
        return functools.partial(self.fee, rate=self.fee_rate)

    def fee(self, notional: int, rate: Fraction | None = None) -> int:
        """The fee on ``notional``, exact and rounded up (no float on the money path)."""
        r = self.fee_rate if rate is None else rate
        return -(-notional * r.numerator // r.denominator)


@dataclass(frozen=True, slots=True)
class Ledger:
    """What the accounting produced: the orders with their fills, positions, trades, equity.

    Money is in account units (see the module docstring) except in ``trades``' and
    ``positions``' float columns, which are in currency.
    """

    fills: pl.DataFrame
    positions: pl.DataFrame
    trades: pl.DataFrame
    equity: pl.DataFrame
    closing_pnls: list[Fraction]
    traded_notional: int
    fees: int
    exposure: float
    marks: dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]


class _Prices:
    """Per-symbol price indexes over the event rows, built on first use: most symbols of a
    stream never trade, and their prices are never worked out.

    Memory is kept to what an index needs: a one-byte kind code per row, and only the
    columns the indexes' kinds read (a bar stream never reads bid or ask), each once. Indexes
    that come out the same (buy and sell of a stream without quotes) are one pair of arrays."""

    _TRADE, _QUOTE, _BAR = 1, 2, 3

    def __init__(self, events: pl.DataFrame) -> None:
        self._events = events
        self._symbol = events.get_column("symbol")
        self.ts = events.get_column("ts").to_numpy()
        self._kinds: np.ndarray[Any, Any] | None = None
        self._rows: dict[str, np.ndarray[Any, Any]] = {}
        self._cache: dict[tuple[str, str], tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}
        self._columns: dict[str, np.ndarray[Any, Any]] = {}  # int64, nulls as 0
        self._all_marks: np.ndarray[Any, Any] | None = None

    def _kind_codes(self) -> np.ndarray[Any, Any]:
        if self._kinds is None:
            kind = self._events.get_column("kind")
            codes = np.zeros(kind.len(), dtype=np.int8)
            for code, name in ((self._TRADE, "trade"), (self._QUOTE, "quote"), (self._BAR, "bar")):
                codes[(kind == name).fill_null(False).to_numpy()] = code
            self._kinds = codes
        return self._kinds

    def _values(self, name: str, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Column ``name`` at ``rows``, nulls as 0, as int64: the whole column made an array
        once, then each symbol's rows taken from it (a polars gather and fill per symbol and
        column cost a query each)."""
        if name not in self._columns:
            column = self._events.get_column(name)
            if column.null_count():
                column = column.fill_null(0)
            # without nulls, a view of the column's own buffer: no copy
            self._columns[name] = column.to_numpy().astype(np.int64, copy=False)
        values = self._columns[name]
        return values if rows.size == values.size else values[rows]

    def index(self, symbol: str, which: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """The rows of ``symbol`` that carry a ``which`` price (buy, sell, mark), and those."""
        key = (symbol, which)
        if key not in self._cache:
            if symbol not in self._rows:
                self._rows[symbol] = np.flatnonzero(
                    (self._symbol == symbol).fill_null(False).to_numpy()
                )
            rows = self._rows[symbol]
            if which == "mark":
                px = self._marks(rows)
            else:
                kinds = self._kind_codes()
                if rows.size != kinds.size:
                    kinds = kinds[rows]
                present = set(np.flatnonzero(np.bincount(kinds, minlength=4)).tolist())
                other = (symbol, "sell" if which == "buy" else "buy")
                if self._QUOTE not in present and other in self._cache:
                    # without quotes, buys and sells fill at the same prices
                    self._cache[key] = self._cache[other]
                    return self._cache[key]
                px = self._fill_prices(rows, kinds, present, which)
            keep = px > 0
            if keep.all():
                self._cache[key] = (rows.astype(np.int64, copy=False), px)
            else:
                self._cache[key] = (rows[keep].astype(np.int64), px[keep])
        return self._cache[key]

    def _marks(self, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The mark at ``rows`` by the one market-price rule (:func:`zcbench.marketdata.marks`;
        0: none), read from the mark fields alone: every row's once, then ``rows`` of them (a
        row's mark is its own fields', whichever rows are with it)."""
        if self._all_marks is None:
            frame = self._events.select([c for c in MARK_FIELDS if c in self._events.columns])
            self._all_marks = (
                mark_series(frame).fill_null(0).to_numpy().astype(np.int64, copy=False)
            )
        values = self._all_marks
        return values if rows.size == values.size else values[rows]

    def _fill_prices(
        self, rows: np.ndarray[Any, Any], kinds: np.ndarray[Any, Any], present: set[int],
        which: str,
    ) -> np.ndarray[Any, Any]:
        """The price a ``which`` (buy or sell) order fills at, at ``rows`` (0: none)."""
        if len(present) == 1 and next(iter(present)) in (self._TRADE, self._BAR):
            # one kind of event, one column: its values as they are (a view, no copy)
            column = "price" if self._TRADE in present else "open"
            return self._values(column, rows)
        return self._mixed(rows, kinds, present, which)

    def _mixed(
        self, rows: np.ndarray[Any, Any], kinds: np.ndarray[Any, Any], present: set[int],
        which: str,
    ) -> np.ndarray[Any, Any]:
        """The ``which`` fill price at ``rows`` whose events are of several kinds (0: none)."""
        px = np.zeros(rows.size, dtype=np.int64)
        if self._TRADE in present:
            mask = kinds == self._TRADE
            px[mask] = self._values("price", rows)[mask]
        if self._QUOTE in present:
            mask = kinds == self._QUOTE
            px[mask] = self._values("ask" if which == "buy" else "bid", rows)[mask]
        if self._BAR in present:
            mask = kinds == self._BAR
            px[mask] = self._values("open", rows)[mask]
        return px

    def all_marks(self) -> dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
        """Every symbol's mark index (see :meth:`index`)."""
        names: list[str] = self._symbol.unique().drop_nulls().to_list()
        return {name: self.index(name, "mark") for name in names}

    def mark_at(self, symbol: str, row: int) -> int:
        """The last mark of ``symbol`` at or before ``row`` (0 if none)."""
        rows, marks = self.index(symbol, "mark")
        k = int(np.searchsorted(rows, row, side="right")) - 1
        return int(marks[k]) if k >= 0 else 0


@dataclass
class _Trade:
    symbol: str
    direction: int
    entry_ts: int
    exit_ts: int = 0
    quantity: int = 0  # the largest open quantity
    entry_cost: int = 0  # sum of entry price * qty, account units
    entry_qty: int = 0
    exit_value: int = 0
    exit_qty: int = 0
    fees: Fraction | int = 0  # a fraction only when a flipping fill's fee was split

    @property
    def pnl(self) -> Fraction | int:
        """Exit value against entry cost (every unit entered was exited), fees included."""
        return self.direction * (self.exit_value - self.entry_cost) - self.fees


def book(
    events: pl.DataFrame,
    signals: pl.DataFrame,
    batch_ends: np.ndarray[Any, Any],
    model: FillModel,
    initial_cash: int,
    *,
    buying_power: BuyingPower | None = None,
    units: Mapping[str, int] | None = None,
    ticks: Mapping[str, int] | None = None,
    lots: Mapping[str, int] | None = None,
    money_scale: int = 10_000,
) -> Ledger:
    """Fill ``signals`` against ``events`` under ``buying_power`` and account for them.

    ``signals`` has ``seq, idx, symbol, side, quantity, limit_price, end_row`` (``end_row``: the
    row after the signal's batch); ``batch_ends[i]`` is that row for batch ``i``;
    ``initial_cash`` is in account units, ``money_scale`` of which make one currency unit;
    ``units``, ``ticks`` and ``lots`` give per symbol the account units of one price unit, the
    tick in price units (slippage is in ticks) and the lot in quantity (1 when absent).
    """
    rule = buying_power or BuyingPower()
    prices = _Prices(events)
    ts = prices.ts
    rate = model.fee_rate
    unit_of = dict(units or {})
    tick_of = dict(ticks or {})
    lot_of = dict(lots or {})
    out: list[dict[str, Any]] = []
    pending: list[tuple[int, int, int, int]] = []  # (fill_row, seq, idx, position in out)
    for sig in signals.iter_rows(named=True):
        row = {**{k: sig[k] for k in ("seq", "idx", "symbol", "side", "quantity", "limit_price")}}
        row.update(dict.fromkeys(("reason", "fill_row", "fill_ts", "fill_price", "notional")))
        row.update(status=NO_NEXT_EVENT, filled_quantity=0, fee=None, cash_after=None)
        rows, px = prices.index(sig["symbol"], sig["side"])
        j = int(np.searchsorted(rows, sig["end_row"], side="left"))
        if sig["quantity"] % lot_of.get(sig["symbol"], 1):
            row.update(status=REFUSED, reason=LOT_SIZE)
        elif j < rows.size:
            sign = 1 if sig["side"] == "buy" else -1
            tick = tick_of.get(sig["symbol"], 1)
            price = max(tick, int(px[j]) + sign * model.slippage_ticks * tick)
            limit = sig["limit_price"]
            if limit is not None and (price - limit) * sign > 0:
                row["status"] = LIMIT
            else:
                notional = price * sig["quantity"] * unit_of.get(sig["symbol"], 1)
                if notional > _MAX_NOTIONAL:
                    raise DataError(
                        f"signal {sig['idx']} of batch {sig['seq']}: {sig['quantity']} units at "
                        f"{price} ticks exceeds the largest notional the ledger holds "
                        f"({_MAX_NOTIONAL} units of money)"
                    )
                row.update(fill_row=int(rows[j]), fill_price=price, notional=notional)
                pending.append((int(rows[j]), sig["seq"], sig["idx"], len(out)))
        out.append(row)

    books = _Books(initial_cash, money_scale)
    for fill_row, _seq, _idx, k in sorted(pending):
        o = out[k]
        sym, price, notional = o["symbol"], o["fill_price"], o["notional"]
        unit = unit_of.get(sym, 1)
        q = o["quantity"] * (1 if o["side"] == "buy" else -1)
        fee = model.fee(notional, rate)
        pos = books.position.get(sym, 0)
        # the account before and after, every other position at its last mark
        long_b = short_b = 0
        for other, held in books.position.items():
            if held and other != sym:
                value = abs(held) * prices.mark_at(other, fill_row) * unit_of.get(other, 1)
                long_b, short_b = (
                    (long_b + value, short_b) if held > 0 else (long_b, short_b + value)
                )
        mine_b, mine_a = abs(pos) * price * unit, abs(pos + q) * price * unit
        long_a = long_b + (mine_a if pos + q > 0 else 0)
        short_a = short_b + (mine_a if pos + q < 0 else 0)
        long_b += mine_b if pos > 0 else 0
        short_b += mine_b if pos < 0 else 0
        cash_after = books.cash - q * price * unit - fee
        refusal = buying_power_refusal(
            rule,
            equity_after=cash_after + long_a - short_a,
            long_before=long_b,
            short_before=short_b,
            long_after=long_a,
            short_after=short_a,
        )
        if refusal is not None:
            o.update(status=REFUSED, reason=refusal.control, fill_row=None, fill_price=None,
                     notional=None)
            continue
        o.update(status=FILLED, fill_ts=int(ts[fill_row]), filled_quantity=o["quantity"],
                 fee=fee)
        o["cash_after"] = books.fill(sym, q, price, unit, fee, int(ts[fill_row]), o["seq"],
                                     fill_row, notional)
    return books.ledger(pl.DataFrame(out, schema=FILLS_SCHEMA), batch_ends, prices, unit_of)


PARTIALLY_FILLED: Final = "partially_filled"
_VENUE_END: Final = {"cancel": "cancelled", "expire": "expired"}


def book_executions(
    events: pl.DataFrame,
    signals: pl.DataFrame,
    journal: pl.DataFrame,
    batch_ends: np.ndarray[Any, Any],
    model: FillModel,
    initial_cash: int,
    *,
    units: Mapping[str, int] | None = None,
    money_scale: int = 10_000,
) -> Ledger:
    """Account for what the closed loop's venue did with ``signals``: the venue model.

    ``journal`` is the loop's journal (``zcbench.host.execution.JOURNAL_SCHEMA``) with two
    columns more, ``batch`` (the batch during whose turn the row was written: its market
    events, then its signals) and ``event_ts`` (the venue's event time of a fill). Every fill
    row is one fill here, at its price and quantity, with ``model``'s fee on its notional (the
    execution layer charged the same fee, :class:`~zcbench.host.execution.ExecutionLayer`'s
    ``fee``), marked into the equity curve at its batch's end; ``signals`` get one row each
    in :data:`FILLS_SCHEMA`, their status from their journal rows (module docstring of
    :mod:`zcbench.backtest._engine`, "the venue model"). Refusals and buying power are the
    execution layer's: nothing is decided here, only counted.
    """
    from zcbench.venue.orders import signal_of_cl_ord_id

    prices = _Prices(events)
    unit_of = dict(units or {})
    rate = model.fee_rate
    ends = np.asarray(batch_ends, dtype=np.int64)
    books = _Books(initial_cash, money_scale)
    state: dict[tuple[int, int], dict[str, Any]] = {}
    # column by column: a long run's journal has a row per order, ack and fill, and a dict
    # per row would cost more than the rest of the accounting
    names = ("event", "seq", "cl_ord_id", "control", "reason", "symbol", "side", "quantity",
             "price_ticks", "batch", "event_ts")
    named_by: dict[str, tuple[str, int, int] | None] = {}  # an order's rows share its ClOrdID
    for event, seq, cl_ord_id, control, reason, sym, side, qty, price, batch, ts in zip(
        *(journal.get_column(c).to_list() for c in names), strict=True
    ):
        text = str(cl_ord_id)
        named = named_by.get(text) if text in named_by else named_by.setdefault(
            text, signal_of_cl_ord_id(text))
        if named is None or named[1] != seq:
            raise DataError(f"journal row {event} of batch {seq}: its ClOrdID "
                            f"{cl_ord_id!r} names no signal of that batch")
        o = state.setdefault((seq, named[2]), {
            "refused": None, "end": "resting", "text": "", "qty": 0, "value": 0,
            "notional": 0, "fee": 0, "fill_ts": None, "fill_row": None, "cash_after": None,
        })
        if event == "reject":
            o["refused"] = control
        elif event in _VENUE_END:
            o["end"], o["text"] = _VENUE_END[event], reason
        elif event == "fill":
            unit = unit_of.get(sym, 1)
            notional = price * qty * unit
            fee = model.fee(notional, rate)
            at = int(ends[batch]) - 1  # marked from its batch's end
            o["cash_after"] = books.fill(sym, qty if side == "buy" else -qty, price, unit, fee,
                                         ts, seq, at, notional)
            o["qty"] += qty
            o["value"] += price * qty
            o["notional"] += notional
            o["fee"] += fee
            o["fill_ts"], o["fill_row"] = ts, at
    out: list[dict[str, Any]] = []
    for sig in signals.iter_rows(named=True):
        got = state.get((sig["seq"], sig["idx"]))
        if got is None:
            raise DataError(f"signal {sig['idx']} of batch {sig['seq']}: no journal row")
        o = got
        line = {k: sig[k] for k in ("seq", "idx", "symbol", "side", "quantity", "limit_price")}
        filled = o["qty"]
        if o["refused"] is not None:
            status, reason = REFUSED, o["refused"]
        elif filled == sig["quantity"]:
            status, reason = FILLED, None
        elif filled:
            status = PARTIALLY_FILLED
            reason = o["end"] + (f": {o['text']}" if o["text"] else "")
        else:
            status, reason = o["end"], o["text"] or None
        line.update(
            status=status,
            reason=reason,
            filled_quantity=filled,
            fill_row=o["fill_row"],
            fill_ts=o["fill_ts"],
            fill_price=o["value"] // filled if filled else None,
            notional=o["notional"] if filled else None,
            fee=o["fee"] if filled else None,
            cash_after=o["cash_after"],
        )
        out.append(line)
    return books.ledger(pl.DataFrame(out, schema=FILLS_SCHEMA), ends, prices, unit_of)


class _Books:
    """The one accountant: cash, positions at average cost, realised PnL, round trips and the
    equity curve, from fills taken in the order they happened (both fill models feed it)."""

    def __init__(self, initial_cash: int, money_scale: int) -> None:
        self.initial = self.cash = initial_cash
        self.money_scale = money_scale
        self.position: dict[str, int] = {}
        self._basis: dict[str, Fraction | int] = {}  # signed cost of the open position
        self._realised: dict[str, Fraction | int] = {}
        self._open: dict[str, _Trade] = {}
        self._closing: list[Fraction] = []
        self._pos_rows: list[dict[str, Any]] = []
        self._trades: list[_Trade] = []
        self._fills: list[dict[str, Any]] = []  # what the equity curve needs of each fill

    def fill(
        self, sym: str, q: int, price: int, unit: int, fee: int, fill_ts: int, seq: int,
        row: int, notional: int,
    ) -> int:
        """Take one fill of ``q`` (signed) at ``price`` (price units; ``unit`` account units
        each) with ``fee``, at event row ``row`` (its place in the equity curve); returns the
        cash after it."""
        self.cash -= q * price * unit + fee
        _apply_fill(sym, q, price * unit, fee, fill_ts, self.position, self._basis,
                    self._realised, self._closing, self._open, self._trades)
        held = self.position[sym]
        self._pos_rows.append(
            {
                "fill_ts": fill_ts,
                "seq": seq,
                "symbol": sym,
                "position": held,
                "avg_cost": float(Fraction(self._basis[sym]) / held) / self.money_scale
                if held
                else None,
                "realised_pnl": float(self._realised[sym]) / self.money_scale,
            }
        )
        self._fills.append({"fill_row": row, "symbol": sym, "side": "buy" if q > 0 else "sell",
                            "quantity": abs(q), "notional": notional, "fee": fee})
        return self.cash

    def ledger(
        self, fills: pl.DataFrame, batch_ends: np.ndarray[Any, Any], prices: _Prices,
        units: Mapping[str, int],
    ) -> Ledger:
        """The ledger of the fills taken, ``fills`` being the orders' table."""
        equity, exposure = _equity(self._fills, batch_ends, prices, self.initial, units,
                                   self.money_scale)
        return Ledger(
            fills=fills,
            positions=pl.DataFrame(self._pos_rows, schema=POSITIONS_SCHEMA),
            trades=_trade_frame(self._trades, self.money_scale),
            equity=equity,
            closing_pnls=self._closing,
            traded_notional=sum(int(f["notional"]) for f in self._fills),
            fees=sum(int(f["fee"]) for f in self._fills),
            exposure=exposure,
            marks=prices.all_marks(),
        )


def _apply_fill(
    sym: str,
    q: int,
    price: int,
    fee: int,
    fill_ts: int,
    position: dict[str, int],
    basis: dict[str, Fraction | int],
    realised: dict[str, Fraction | int],
    closing: list[Fraction],
    open_trade: dict[str, _Trade],
    trades: list[_Trade],
) -> None:
    """One fill into positions (average cost), realised PnL and the round-trip trades.

    A round trip opens when a position leaves zero and closes when it returns to zero or flips
    (the flipping fill closes one and opens the next; its fee is split by quantity).
    """
    pos, cost = position.get(sym, 0), basis.get(sym, 0)
    pnl: Fraction | int = 0
    remaining = q
    if pos != 0 and (pos > 0) != (q > 0):  # reduces, maybe flips
        closed = min(abs(q), abs(pos))
        direction = 1 if pos > 0 else -1
        if closed == abs(pos):  # closes it all: (price - cost / pos) * |pos| * direction
            pnl = price * closed * direction - cost  # exact, without a fraction's arithmetic
            cost = 0
        else:
            avg = Fraction(cost, pos) if isinstance(cost, int) else cost / pos
            pnl = (price - avg) * closed * direction
            cost -= avg * closed * direction
        closing.append(Fraction(pnl))
        trade = open_trade[sym]
        share = fee if closed == abs(q) else Fraction(fee * closed, abs(q))
        trade.exit_value += price * closed
        trade.exit_qty += closed
        trade.fees += share
        pos += closed * (1 if q > 0 else -1)
        remaining = q + closed * (-1 if q > 0 else 1)
        if pos == 0:
            trade.exit_ts = fill_ts
            trades.append(trade)
            del open_trade[sym]
            cost = 0
    if remaining:
        if sym not in open_trade:
            open_trade[sym] = _Trade(sym, 1 if remaining > 0 else -1, fill_ts)
        trade = open_trade[sym]
        share = fee if remaining == q else Fraction(fee * abs(remaining), abs(q))
        trade.entry_cost += price * abs(remaining)
        trade.entry_qty += abs(remaining)
        trade.fees += share
        cost += price * remaining
        pos += remaining
        trade.quantity = max(trade.quantity, abs(pos))
    position[sym], basis[sym] = pos, cost
    realised[sym] = realised.get(sym, 0) + pnl


def _trade_frame(trades: list[_Trade], money_scale: int) -> pl.DataFrame:
    rows = []
    for t in trades:
        exit_ts = t.exit_ts
        rows.append(
            {
                "symbol": t.symbol,
                "direction": "long" if t.direction > 0 else "short",
                "entry_ts": t.entry_ts,
                "exit_ts": exit_ts,
                "quantity": t.quantity,
                "entry_price": float(t.entry_cost / t.entry_qty) / money_scale,
                "exit_price": float(t.exit_value / t.exit_qty) / money_scale,
                "pnl": float(t.pnl) / money_scale,
                "return": float(t.pnl / t.entry_cost) if t.entry_cost else 0.0,
                "fees": float(t.fees) / money_scale,
                "duration_s": (exit_ts - t.entry_ts) / 1e9,
            }
        )
    return pl.DataFrame(rows, schema=TRADES_SCHEMA)


def _equity(
    filled: list[dict[str, Any]],
    batch_ends: np.ndarray[Any, Any],
    prices: _Prices,
    initial_cash: int,
    units: Mapping[str, int],
    money_scale: int,
) -> tuple[pl.DataFrame, float]:
    """Cash, position value and equity after each batch, marked at its last event; and the
    share of batches after which some position was open (the exposure)."""
    ends = np.asarray(batch_ends, dtype=np.int64)
    order = sorted(range(len(filled)), key=lambda i: filled[i]["fill_row"])
    fill_rows = np.array([filled[i]["fill_row"] for i in order], dtype=np.int64)
    signed = np.array([1 if filled[i]["side"] == "buy" else -1 for i in order], dtype=np.int64)
    qty = np.array([filled[i]["quantity"] for i in order], dtype=np.int64) * signed
    notional = np.array([filled[i]["notional"] for i in order], dtype=np.int64)
    fees = np.array([filled[i]["fee"] for i in order], dtype=np.int64)
    cash_delta = -signed * notional - fees
    cash_after = initial_cash + np.concatenate([[0], np.cumsum(cash_delta)])  # per fill count
    fill_symbols = np.array([filled[i]["symbol"] for i in order], dtype=object)
    books = []  # per traded symbol: its fill rows, position after each, its marks, its unit
    for sym in sorted(set(fill_symbols.tolist())):
        mine = fill_symbols == sym
        mark_rows, marks = prices.index(sym, "mark")
        pos_cum = np.concatenate([[0], np.cumsum(qty[mine])])
        books.append((fill_rows[mine], pos_cum, mark_rows, marks, units.get(sym, 1)))
    cash = np.empty(ends.size, dtype=np.int64)
    value = np.zeros(ends.size, dtype=np.int64)
    held = np.zeros(ends.size, dtype=bool)
    # A chunk of batches at a time: the temporaries stay small however long the run.
    for lo in range(0, ends.size, _CHUNK):
        hi = min(lo + _CHUNK, ends.size)
        part = ends[lo:hi]
        cash[lo:hi] = cash_after[np.searchsorted(fill_rows, part, side="left")]
        for sym_rows, pos_cum, mark_rows, marks, unit in books:
            pos = pos_cum[np.searchsorted(sym_rows, part, side="left")]
            k = np.searchsorted(mark_rows, part, side="left") - 1
            mark = np.where(k >= 0, marks[np.maximum(k, 0)] if marks.size else 0, 0)
            value[lo:hi] += pos * mark * unit
            held[lo:hi] |= pos != 0
    end_ts = prices.ts[ends - 1] if ends.size else np.zeros(0, dtype=np.int64)
    frame = pl.DataFrame(
        {
            "seq": pl.Series(np.arange(ends.size, dtype=np.int64)),
            "ts": pl.Series(end_ts, dtype=pl.Int64),
            "cash": pl.Series(cash, dtype=pl.Int64),
            "position_value": pl.Series(value, dtype=pl.Int64),
            "equity": pl.Series(cash + value, dtype=pl.Int64),
        }
    ).with_columns((pl.col("equity") / money_scale).alias("equity_ccy"))
    exposure = float(held.mean()) if ends.size else 0.0
    return frame, exposure
