"""The paper venue: resting orders and partial fills against quoted size, deterministic.

One model for the backtest, a live run's paper execution and the FIX venue simulator
(``zcbench venue sim``): same market events and same requests in the same order give the same
executions, byte for byte (ids included: ``<prefix>O<n>`` for orders, ``<prefix>E<n>`` for
executions, counted from the start; a continuing run's venue counts on after every id its
chain's records hold, :meth:`PaperVenue.carry`).

Time is event time: the venue's clock is the ``ts`` of the last market event it has seen.

**Liquidity.** Each market event of a symbol replaces what can be traded in it:

- a quote: ``ask_size`` at ``ask`` for buys, ``bid_size`` at ``bid`` for sells;
- a trade print: ``size`` at ``price`` on either side;
- a bar: ``volume`` at ``close`` on either side.

Fills consume that liquidity until the symbol's next event; a size the data does not give (no
column, or null) is unbounded. Resting orders take liquidity in arrival order (a replaced order
goes to the back). An event without ``kind`` is a trade when it has a price, else a quote when it
has bid and ask, else a bar when it has a close.

**Order types.** A market order takes what is there at the liquidity's price; a limit order only
at its limit or better (a buy at ask <= limit, a sell at bid >= limit), at the liquidity's
price. A stop (stop-limit) order waits until the market reaches its stop (a buy when the ask, a
sell when the bid, is at or through the stop), then acts as a market (limit) order on that same
event.

**Time in force.** ``IOC``: what fills at once fills, the rest is cancelled. ``FOK``: all at
once or nothing (cancelled). ``DAY``: rests until the first event of a later UTC day (by event
time), then expires. ``GTC``: rests until filled or cancelled. A continuing run's paper venue
starts with the orders the previous run left resting (:meth:`PaperVenue.carry`).

**Requests.** :meth:`PaperVenue.submit`, :meth:`~PaperVenue.cancel`, :meth:`~PaperVenue.replace`
each return the executions they cause (an acknowledgement ``new`` first, then fills, then a
cancel of an IOC/FOK remainder); :meth:`~PaperVenue.on_market` returns the fills, triggers and
expiries that market events cause to resting orders. Refusals are executions too: ``rejected``
(a repeated ClOrdID, no market yet for the symbol) or ``cancel_rejected`` (unknown or finished
order, a replace below the filled quantity), each with its reason in ``text``.

Performance: market frames are kept as they come and looked at only when an order needs them
(most batches of a run see no order); while orders rest, only the rows of their symbols are
walked one by one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import polars as pl

from zcbench.errors import UsageError
from zcbench.venue.orders import (
    LIMIT,
    MARKET,
    STOP,
    STOP_LIMIT,
    Cancel,
    Execution,
    Order,
    Replace,
)

__all__ = ["MARKET_COLUMNS", "OpenOrder", "PaperVenue", "simulate"]

DAY_NS: Final = 86_400 * 1_000_000_000
MARKET_COLUMNS: Final = (
    "ts",
    "symbol",
    "kind",
    "price",
    "size",
    "bid",
    "ask",
    "bid_size",
    "ask_size",
    "close",
    "volume",
)
_UNBOUNDED: Final = 1 << 62
_NO_ORDER: Final = "NONE"
_MAX_PENDING: Final = 256  # frames kept unlooked-at while nothing rests (bounded memory)


@dataclass(slots=True)
class _Top:
    """What can be traded in one symbol now (module docstring, "Liquidity")."""

    bid: int | None
    ask: int | None
    bid_left: int
    ask_left: int


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """A resting order as the venue holds it; ``day`` the UTC day (of event time) it was
    accepted on, which a ``DAY`` order rests through."""

    order: Order
    order_id: str
    cum_qty: int
    cum_notional: int
    triggered: bool
    day: int = 0

    @property
    def leaves_qty(self) -> int:
        return self.order.quantity - self.cum_qty


@dataclass(slots=True)
class _Live:
    order: Order
    order_id: str
    day: int
    priority: int
    cum_qty: int = 0
    cum_notional: int = 0
    triggered: bool = False

    @property
    def leaves(self) -> int:
        return self.order.quantity - self.cum_qty


def _size(value: Any) -> int:
    return _UNBOUNDED if value is None else max(0, int(value))


def _last_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Each symbol's last row in ``frame`` (a null symbol counts as one), by column name (a
    column the frame lacks reads as None through ``dict.get``), in row order.

    Walked back from the end a growing chunk at a time until every symbol is met: a stream's
    few symbols all appear near its end, and a query over the whole frame would cost far more
    than the rows it reads."""
    symbols = frame.get_column("symbol")
    wanted = symbols.n_unique() if frame.height else 0
    found: dict[str | None, int] = {}
    end, step = frame.height, 64
    while len(found) < wanted and end > 0:
        start = max(0, end - step)
        names = symbols.slice(start, end - start).to_list()
        for k in range(len(names) - 1, -1, -1):
            found.setdefault(names[k], start + k)
            if len(found) == wanted:  # every symbol met: the rest of the chunk is older
                break
        end, step = start, step * 4
    rows = sorted(found.values())
    if len(rows) <= 16:
        return [frame.row(i, named=True) for i in rows]
    return frame[rows].rows(named=True)


def _top_of(row: dict[str, Any]) -> _Top | None:
    kind = row.get("kind")
    price, bid, ask, close = (row.get(c) for c in ("price", "bid", "ask", "close"))
    if kind is None:
        kind = (
            "trade"
            if price is not None
            else "quote"
            if bid is not None and ask is not None
            else "bar"
            if close is not None
            else None
        )
    if kind == "trade" and price is not None and price > 0:
        left = _size(row.get("size"))
        return _Top(int(price), int(price), left, left)
    if kind == "quote" and (bid is not None or ask is not None):
        return _Top(
            int(bid) if bid is not None and bid > 0 else None,
            int(ask) if ask is not None and ask > 0 else None,
            _size(row.get("bid_size")),
            _size(row.get("ask_size")),
        )
    if kind == "bar" and close is not None and close > 0:
        left = _size(row.get("volume"))
        return _Top(int(close), int(close), left, left)
    return None


class PaperVenue:
    """The paper venue (module docstring). ``prefix`` starts every order and execution id (a
    simulator restarted on the same drop copy passes ``first_id`` to keep ids unique)."""

    name = "paper"

    def __init__(self, *, prefix: str = "P", first_id: int = 1) -> None:
        if not prefix.isalnum():
            raise UsageError(f"venue id prefix must be letters and digits, got {prefix!r}")
        self._prefix = prefix
        self._next_order = first_id
        self._next_exec = first_id
        self._priority = 0
        self._tops: dict[str, _Top] = {}
        self._live: dict[str, _Live] = {}  # resting orders by their current ClOrdID
        self._seen: set[str] = set()  # every ClOrdID ever used (orders and requests)
        self._pending: list[pl.DataFrame] = []
        self.now = 0
        self.positions: dict[str, int] = {}

    # ---------------------------------------------------------------- market data

    def on_market(self, events: pl.DataFrame) -> list[Execution]:
        """Take a frame of market events (any of :data:`MARKET_COLUMNS`, ``symbol`` required,
        in event-time order); returns what they did to resting orders."""
        if events.height == 0:
            return []
        if "symbol" not in events.columns:
            raise UsageError("market events need a symbol column")
        self._pending.append(events)
        if not self._live and len(self._pending) < _MAX_PENDING:
            return []
        return self._catch_up()

    def _catch_up(self) -> list[Execution]:
        if not self._pending:
            return []
        frames, self._pending = self._pending, []
        if not self._live and len(frames) > 1:
            # nothing rests: only each symbol's last event matters, so one pass does
            try:  # frames of one source share a schema: the cheap concat
                frames = [pl.concat(frames, how="vertical", rechunk=False)]
            except (pl.exceptions.SchemaError, pl.exceptions.ShapeError):
                frames = [pl.concat(frames, how="diagonal_relaxed")]
        out: list[Execution] = []
        for frame in frames:
            out.extend(self._apply(frame))
        return out

    def _apply(self, frame: pl.DataFrame) -> list[Execution]:
        # eager column operations only: a frame is often a few rows, where a lazy query's
        # planning would cost a hundred times the work
        active = {live.order.symbol for live in self._live.values()}
        out: list[Execution] = []
        if active:
            mask = frame.get_column("symbol").is_in(sorted(active))
            walked, rest = frame.filter(mask), frame.filter(~mask)
        else:  # nothing rests (most orders' turn): no row to walk, and no empty frame made
            walked, rest = None, frame
        # symbols without resting orders: only their last event matters
        for row in _last_rows(rest):
            top = _top_of(row)
            if top is not None:
                self._tops[row["symbol"]] = top
        for row in walked.iter_rows(named=True) if walked is not None else ():
            ts = row.get("ts")
            if ts is not None:
                self.now = max(self.now, int(ts))
                out.extend(self._expire_days())
            top = _top_of(row)
            if top is None:
                continue
            self._tops[row["symbol"]] = top
            for live in self._by_priority(row["symbol"]):
                out.extend(self._work(live, top))
        last_ts = frame.get_column("ts").max() if "ts" in frame.columns else None
        if last_ts is not None:
            self.now = max(self.now, int(last_ts))  # type: ignore[arg-type]
            out.extend(self._expire_days())
        return out

    def _by_priority(self, symbol: str) -> list[_Live]:
        return sorted(
            (v for v in self._live.values() if v.order.symbol == symbol), key=lambda v: v.priority
        )

    def _expire_days(self) -> list[Execution]:
        today = self.now // DAY_NS
        out = []
        for live in sorted(self._live.values(), key=lambda v: v.priority):
            if live.order.tif == "DAY" and live.day < today:
                del self._live[live.order.cl_ord_id]
                out.append(self._report(live, "expired", "expired", text="DAY order: day ended"))
        return out

    # ---------------------------------------------------------------- requests

    def submit(self, order: Order) -> list[Execution]:
        """Accept (or refuse) ``order`` and work it against the market at once."""
        out = self._catch_up()
        if order.cl_ord_id in self._seen:
            return [*out, self._refusal(order, "rejected", f"repeated ClOrdID {order.cl_ord_id}")]
        self._seen.add(order.cl_ord_id)
        top = self._tops.get(order.symbol)
        if top is None:
            return [*out, self._refusal(order, "rejected", f"no market yet for {order.symbol}")]
        live = _Live(order, self._new_order_id(), self.now // DAY_NS, self._next_priority())
        out.append(self._report(live, "new", "new"))
        if order.tif == "FOK" and self._available(live, top) < order.quantity:
            out.append(
                self._report(live, "canceled", "canceled", text="FOK: quantity not available")
            )
            return out
        self._live[order.cl_ord_id] = live
        out.extend(self._work(live, top))
        if order.tif in ("IOC", "FOK") and order.cl_ord_id in self._live:
            del self._live[order.cl_ord_id]
            out.append(self._report(live, "canceled", "canceled", text="IOC: remainder"))
        return out

    def cancel(self, request: Cancel) -> list[Execution]:
        """Cancel a resting order; a ``cancel_rejected`` when there is none by that id."""
        out = self._catch_up()
        problem = self._request_problem(request.cl_ord_id, request.orig_cl_ord_id)
        if problem:
            return [*out, self._cancel_refusal(request.cl_ord_id, request.orig_cl_ord_id, problem)]
        live = self._live.pop(request.orig_cl_ord_id)
        out.append(
            self._report(
                live,
                "canceled",
                "canceled",
                cl_ord_id=request.cl_ord_id,
                orig=request.orig_cl_ord_id,
                text="canceled on request",
            )
        )
        return out

    def replace(self, request: Replace) -> list[Execution]:
        """Replace a resting order's quantity and prices; it keeps its order id, loses its
        place, and is worked again at once."""
        out = self._catch_up()
        problem = self._request_problem(request.cl_ord_id, request.orig_cl_ord_id)
        live = self._live.get(request.orig_cl_ord_id)
        if not problem and live is not None:
            if request.quantity <= live.cum_qty:
                problem = f"new quantity {request.quantity} not above the filled {live.cum_qty}"
            elif request.limit_price is not None and live.order.ord_type not in (
                LIMIT,
                STOP_LIMIT,
            ):
                problem = f"a {live.order.ord_type} order has no limit price to replace"
            elif request.stop_price is not None and live.order.ord_type not in (STOP, STOP_LIMIT):
                problem = f"a {live.order.ord_type} order has no stop price to replace"
        if problem or live is None:
            return [*out, self._cancel_refusal(request.cl_ord_id, request.orig_cl_ord_id, problem)]
        del self._live[request.orig_cl_ord_id]
        live.order = replace(
            live.order,
            cl_ord_id=request.cl_ord_id,
            quantity=request.quantity,
            limit_price=live.order.limit_price
            if request.limit_price is None
            else request.limit_price,
            stop_price=live.order.stop_price if request.stop_price is None else request.stop_price,
        )
        live.priority = self._next_priority()
        self._live[request.cl_ord_id] = live
        out.append(self._report(live, "replaced", None, orig=request.orig_cl_ord_id))
        top = self._tops.get(live.order.symbol)
        if top is not None:
            out.extend(self._work(live, top))
        return out

    def resting(self) -> bool:
        """Whether any order rests (cheap: the pending market frames are not looked at; while
        nothing rests they fill and expire nothing)."""
        return bool(self._live)

    def open_orders(self) -> list[OpenOrder]:
        """The resting orders, in priority order."""
        self._catch_up()  # pending frames exist only while nothing rests: they report nothing
        return [
            OpenOrder(v.order, v.order_id, v.cum_qty, v.cum_notional, v.triggered, v.day)
            for v in sorted(self._live.values(), key=lambda v: v.priority)
        ]

    def carry(self, orders: Sequence[OpenOrder], *, used_ids: Iterable[str] = ()) -> None:
        """Rest ``orders`` (an earlier venue's, as a continuing run's records show them) before
        any market event or request, in the given priority order, each with what it had
        filled, its day and whether its stop had triggered; they get new order ids. Its ids
        go on after the largest number of ``used_ids`` of its own form (``<prefix>O<n>``,
        ``<prefix>E<n>``: every id the chain's records hold), so ids do not repeat along a
        chain. Refused (:class:`UsageError`) once this venue has seen anything, or for an
        order with nothing left or a ClOrdID used twice."""
        if self._seen or self._pending or self._tops:
            raise UsageError("orders are carried into a paper venue before it sees anything")
        own = re.compile(rf"{self._prefix}[OE]([1-9][0-9]{{0,18}})")
        numbers = [int(m.group(1)) for m in map(own.fullmatch, used_ids) if m is not None]
        after = max(numbers, default=0) + 1
        self._next_order = max(self._next_order, after)
        self._next_exec = max(self._next_exec, after)
        for o in orders:
            cid = o.order.cl_ord_id
            if cid in self._seen or not 0 <= o.cum_qty < o.order.quantity:
                raise UsageError(f"cannot carry order {cid}: a repeated ClOrdID, or nothing "
                                 "left of it")
            self._seen.add(cid)
            self._live[cid] = _Live(o.order, self._new_order_id(), o.day, self._next_priority(),
                                    o.cum_qty, o.cum_notional, o.triggered)

    def close(self) -> None:
        """Nothing to release (the :class:`~zcbench.host.execution.Venue` interface)."""

    # ---------------------------------------------------------------- matching

    def _request_problem(self, cl_ord_id: str, orig: str) -> str:
        if cl_ord_id in self._seen:
            return f"repeated ClOrdID {cl_ord_id}"
        self._seen.add(cl_ord_id)
        if orig not in self._live:
            return f"no open order {orig}" if orig in self._seen else f"unknown order {orig}"
        return ""

    def _triggered(self, live: _Live, top: _Top) -> bool:
        if live.triggered or live.order.ord_type in (MARKET, LIMIT):
            return True
        stop = live.order.stop_price
        assert stop is not None
        if live.order.side == "buy":
            hit = top.ask is not None and top.ask >= stop
        else:
            hit = top.bid is not None and top.bid <= stop
        live.triggered = hit
        return hit

    def _quote(self, live: _Live, top: _Top) -> tuple[int | None, int]:
        """The price and size this order could take now (size 0: none)."""
        o = live.order
        limit = o.limit_price if o.ord_type in (LIMIT, STOP_LIMIT) else None
        if o.side == "buy":
            px, left = top.ask, top.ask_left
            ok = px is not None and (limit is None or px <= limit)
        else:
            px, left = top.bid, top.bid_left
            ok = px is not None and (limit is None or px >= limit)
        return (px, left) if ok else (None, 0)

    def _available(self, live: _Live, top: _Top) -> int:
        if not self._triggered(live, top):
            return 0
        return self._quote(live, top)[1]

    def _work(self, live: _Live, top: _Top) -> Iterator[Execution]:
        if not self._triggered(live, top):
            return
        px, left = self._quote(live, top)
        qty = min(live.leaves, left)
        if px is None or qty <= 0:
            return
        if live.order.side == "buy":
            top.ask_left -= qty
        else:
            top.bid_left -= qty
        live.cum_qty += qty
        live.cum_notional += qty * px
        signed = qty if live.order.side == "buy" else -qty
        self.positions[live.order.symbol] = self.positions.get(live.order.symbol, 0) + signed
        done = live.leaves == 0
        if done:
            self._live.pop(live.order.cl_ord_id, None)
        yield self._report(
            live, "trade", "filled" if done else "partially_filled", last_qty=qty, last_px=px
        )

    # ---------------------------------------------------------------- reports

    def _new_order_id(self) -> str:
        n, self._next_order = self._next_order, self._next_order + 1
        return f"{self._prefix}O{n}"

    def _new_exec_id(self) -> str:
        n, self._next_exec = self._next_exec, self._next_exec + 1
        return f"{self._prefix}E{n}"

    def _next_priority(self) -> int:
        self._priority += 1
        return self._priority

    def _report(
        self,
        live: _Live,
        exec_type: str,
        status: str | None,
        *,
        last_qty: int = 0,
        last_px: int = 0,
        text: str = "",
        cl_ord_id: str | None = None,
        orig: str = "",
    ) -> Execution:
        o = live.order
        if status is None:
            status = "partially_filled" if live.cum_qty else "new"
        ended = status in ("filled", "canceled", "expired", "rejected")
        return Execution(
            exec_id=self._new_exec_id(),
            order_id=live.order_id,
            cl_ord_id=cl_ord_id or o.cl_ord_id,
            exec_type=exec_type,
            ord_status=status,
            symbol=o.symbol,
            side=o.side,
            order_qty=o.quantity,
            last_qty=last_qty,
            last_px=last_px,
            cum_qty=live.cum_qty,
            leaves_qty=0 if ended else live.leaves,
            cum_notional=live.cum_notional,
            ts=self.now,
            text=text,
            orig_cl_ord_id=orig,
            log_index=o.log_index,
            signal_hash=o.signal_hash,
        )

    def _refusal(self, order: Order, exec_type: str, text: str) -> Execution:
        return Execution(
            exec_id=self._new_exec_id(),
            order_id=_NO_ORDER,
            cl_ord_id=order.cl_ord_id,
            exec_type=exec_type,
            ord_status="rejected",
            symbol=order.symbol,
            side=order.side,
            order_qty=order.quantity,
            ts=self.now,
            text=text,
            log_index=order.log_index,
            signal_hash=order.signal_hash,
        )

    def _cancel_refusal(self, cl_ord_id: str, orig: str, text: str) -> Execution:
        live = self._live.get(orig)
        if live is None:
            return Execution(
                exec_id=self._new_exec_id(),
                order_id=_NO_ORDER,
                cl_ord_id=cl_ord_id,
                exec_type="cancel_rejected",
                ord_status="rejected",
                symbol="?",
                side="buy",
                order_qty=0,
                ts=self.now,
                text=text,
                orig_cl_ord_id=orig,
            )
        return self._report(
            live, "cancel_rejected", None, text=text, cl_ord_id=cl_ord_id, orig=orig
        )


def simulate(
    events: pl.DataFrame,
    ends: Sequence[int],
    signals: Mapping[int, Sequence[Any]],
    *,
    prefix: str = "bt",
    venue: PaperVenue | None = None,
) -> list[Execution]:
    """The backtest's way onto the paper venue, in the live execution layer's order: batch
    ``seq`` (rows up to ``ends[seq]``, exclusive) reaches the venue, then that batch's signals
    become orders ``<prefix>-<seq>-<k>`` (:func:`~zcbench.venue.orders.order_from_signal`, with
    the batch's ``seq`` for the log index). Returns every execution, in order.

    The backtest of a strategy that takes the feedback context fills on this venue through
    the live execution layer (``zcbench.backtest._loop.FeedbackLoop``), and counts its tables
    from that journal; a strategy without context still fills by the backtest's next-event
    model."""
    from zcbench.venue.orders import cl_ord_id_for, order_from_signal

    venue = venue or PaperVenue()
    out: list[Execution] = []
    start = 0
    for seq, end in enumerate(ends):
        out += venue.on_market(events.slice(start, int(end) - start))
        start = int(end)
        for k, signal in enumerate(signals.get(seq, ())):
            order = order_from_signal(signal, cl_ord_id=cl_ord_id_for(prefix, seq, k),
                                      log_index=seq, signal_pos=k)
            out += venue.submit(order)
    return out
