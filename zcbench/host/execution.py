"""The execution layer: risk limits, paper fills, positions, PnL and the orders/fills journal.

It acts only on :class:`VerifiedSignals`, which only the host's log writer makes, after the
batch's records and its signed checkpoint are durable and verified (log before act). Every
journal row names the log index of the OUT record whose signal caused it, so an auditor can
reconcile orders with the signed log.

Fills are on paper: an order is immediate-or-cancel against the last market price seen for its
symbol (a trade's price, else the quote's mid, else a bar's close). Prices are integer ticks,
quantities integer units, so positions and PnL are exact.

It never sees the enclave's key and never reads a clock: times come in as parameters.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import polars as pl

from zcbench.errors import UsageError
from zcbench.strategy import Signal

__all__ = [
    "JOURNAL_SCHEMA",
    "ExecutionLayer",
    "OrderResult",
    "RiskLimits",
    "VerifiedSignals",
]


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Pre-trade limits. ``price_collar_bps``: how far (basis points) a limit price or the fill
    price may be from the last market price; ``max_orders_per_s``: orders in any one-second
    window; ``max_position`` and ``max_notional`` (ticks × units, per order and gross) are
    absolute values per symbol and in total."""

    max_position: int = 1_000
    max_notional: int = 10**13
    max_orders_per_s: int = 100
    price_collar_bps: int = 500
    kill_switch: bool = False

    def __post_init__(self) -> None:
        for name in ("max_position", "max_notional", "max_orders_per_s", "price_collar_bps"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise UsageError(f"RiskLimits.{name} must be a non-negative int, got {value!r}")


@dataclass(frozen=True, slots=True)
class VerifiedSignals:
    """Signals of one batch whose IN and OUT records and covering checkpoint are durable and
    verified under the attested log key. Made by the host log writer; ``out_index`` is the log
    index of the OUT record; ``checkpoint_size`` the size of the checkpoint that covers it."""

    seq: int
    out_index: int
    checkpoint_size: int
    signals: tuple[Signal, ...]

    def __post_init__(self) -> None:
        if self.checkpoint_size <= self.out_index:
            raise UsageError(
                f"batch {self.seq}: checkpoint of size {self.checkpoint_size} does not cover "
                f"OUT record {self.out_index}"
            )


@dataclass(frozen=True, slots=True)
class OrderResult:
    """What became of one signal: ``status`` is ``filled``, ``rejected`` or ``unfilled``."""

    seq: int
    log_index: int
    symbol: str
    side: str
    quantity: int
    limit_price: int | None
    status: str
    reason: str = ""
    fill_price: int | None = None


JOURNAL_SCHEMA: Final[dict[str, Any]] = {
    "time_ns": pl.Int64,
    "seq": pl.Int64,
    "log_index": pl.Int64,
    "event": pl.String,  # order | fill | reject
    "symbol": pl.String,
    "side": pl.String,
    "quantity": pl.Int64,
    "limit_price": pl.Int64,
    "price": pl.Int64,
    "reason": pl.String,
    "position_after": pl.Int64,
}


@dataclass
class ExecutionLayer:
    """Risk-checked paper execution with positions, PnL and a journal."""

    limits: RiskLimits = field(default_factory=RiskLimits)
    positions: dict[str, int] = field(default_factory=dict)
    cash: int = 0
    _prices: dict[str, int] = field(default_factory=dict)
    _unpriced: list[pl.DataFrame] = field(default_factory=list)
    killed: str | None = None
    _recent: collections.deque[int] = field(default_factory=collections.deque)
    _rows: list[dict[str, Any]] = field(default_factory=list)
    _counts: dict[str, int] = field(default_factory=lambda: {"order": 0, "fill": 0, "reject": 0})

    def __post_init__(self) -> None:
        if self.limits.kill_switch:
            self.killed = "kill switch set in the risk limits"

    def kill(self, reason: str) -> None:
        """Engage the kill switch: every later order is rejected with ``reason``."""
        if self.killed is None:
            self.killed = reason

    def on_market(self, events: pl.DataFrame) -> None:
        """Note a batch of market events (any columns among symbol, price, bid, ask, close).

        Prices are worked out lazily, when an order or the PnL needs them: most batches carry
        no signal, and one pass over many batches is much cheaper than one per batch.
        """
        if "symbol" in events.columns and events.height:
            self._unpriced.append(events)

    @property
    def last_price(self) -> dict[str, int]:
        """The last market price (ticks) seen per symbol."""
        if self._unpriced:
            frames, self._unpriced = self._unpriced, []
            symbols = [f.get_column("symbol").to_list() for f in frames]
            wanted = set().union(*symbols) - {None}
            found: dict[str, int] = {}
            # newest first, so each symbol's last price is met first; stop once all are known
            for frame, names in zip(reversed(frames), reversed(symbols), strict=True):
                price = _price_at(frame)
                for i in range(frame.height - 1, -1, -1):
                    if names[i] not in found:
                        px = price(i)
                        if px is not None and px > 0:
                            found[names[i]] = px
                            if len(found) == len(wanted):
                                break
                if len(found) == len(wanted):
                    break
            self._prices.update(found)
        return self._prices

    def act(self, verified: VerifiedSignals, *, now_ns: int) -> list[OrderResult]:
        """Place (on paper) every signal of a verified batch, in order, under the risk limits."""
        if not isinstance(verified, VerifiedSignals):
            raise UsageError("the execution layer acts only on VerifiedSignals from the log")
        if not verified.signals:
            return []
        return [self._place(verified.seq, verified.out_index, s, now_ns) for s in verified.signals]

    def _place(self, seq: int, log_index: int, s: Signal, now_ns: int) -> OrderResult:
        def done(status: str, reason: str = "", price: int | None = None) -> OrderResult:
            return OrderResult(
                seq, log_index, s.symbol, s.side, s.quantity, s.limit_price, status, reason, price
            )

        self._journal(now_ns, seq, log_index, "order", s, None, "")
        reason = self._risk_reason(s, now_ns)
        if reason:
            self._journal(now_ns, seq, log_index, "reject", s, None, reason)
            return done("rejected", reason)
        self._recent.append(now_ns)
        px = self.last_price[s.symbol]
        if s.limit_price is not None and (
            (s.side == "buy" and px > s.limit_price) or (s.side == "sell" and px < s.limit_price)
        ):
            reason = f"market {px} through limit {s.limit_price}"
            self._journal(now_ns, seq, log_index, "reject", s, px, reason)
            return done("unfilled", reason, None)
        signed = s.quantity if s.side == "buy" else -s.quantity
        self.positions[s.symbol] = self.positions.get(s.symbol, 0) + signed
        self.cash -= signed * px
        self._journal(now_ns, seq, log_index, "fill", s, px, "")
        return done("filled", "", px)

    def _risk_reason(self, s: Signal, now_ns: int) -> str:
        lim = self.limits
        if self.killed is not None:
            return f"kill switch: {self.killed}"
        px = self.last_price.get(s.symbol)
        if px is None:
            return f"no market price yet for {s.symbol}"
        if (
            s.limit_price is not None
            and abs(s.limit_price - px) * 10_000 > px * lim.price_collar_bps
        ):
            return f"limit {s.limit_price} outside the {lim.price_collar_bps} bp collar around {px}"
        signed = s.quantity if s.side == "buy" else -s.quantity
        after = self.positions.get(s.symbol, 0) + signed
        if abs(after) > lim.max_position:
            return f"position would be {after}, limit {lim.max_position}"
        if s.quantity * px > lim.max_notional:
            return f"order notional {s.quantity * px} over {lim.max_notional}"
        prices = self.last_price
        gross = sum(abs(q) * prices.get(sym, 0) for sym, q in self.positions.items())
        gross += abs(after) * px - abs(self.positions.get(s.symbol, 0)) * px
        if gross > lim.max_notional:
            return f"gross notional would be {gross}, limit {lim.max_notional}"
        while self._recent and self._recent[0] <= now_ns - 1_000_000_000:
            self._recent.popleft()
        if len(self._recent) >= lim.max_orders_per_s:
            return f"order rate over {lim.max_orders_per_s}/s"
        return ""

    def _journal(
        self,
        now_ns: int,
        seq: int,
        log_index: int,
        event: str,
        s: Signal,
        price: int | None,
        reason: str,
    ) -> None:
        self._counts[event] += 1
        self._rows.append(
            {
                "time_ns": now_ns,
                "seq": seq,
                "log_index": log_index,
                "event": event,
                "symbol": s.symbol,
                "side": s.side,
                "quantity": s.quantity,
                "limit_price": s.limit_price,
                "price": price,
                "reason": reason,
                "position_after": self.positions.get(s.symbol, 0),
            }
        )

    def pnl(self) -> int:
        """Mark-to-market PnL in ticks × units: cash plus positions at the last prices."""
        prices = self.last_price
        return self.cash + sum(q * prices.get(sym, 0) for sym, q in self.positions.items())

    def counts(self) -> dict[str, int]:
        """How many journal rows of each event kind."""
        return dict(self._counts)

    def journal(self) -> pl.DataFrame:
        """The orders/fills journal so far."""
        return pl.DataFrame(self._rows, schema=JOURNAL_SCHEMA)

    def write_journal(self, path: Path) -> Path:
        """Write the journal as parquet (``run/journal.parquet``)."""
        self.journal().write_parquet(path)
        return path


def _price_at(frame: pl.DataFrame) -> Callable[[int], int | None]:
    """Row i's price: a trade's price, else the quote's mid, else a bar's close (plain Python:
    only a few rows are looked at, and polars' per-call overhead would dominate)."""
    cols = {
        c: frame.get_column(c).to_list()
        for c in ("price", "bid", "ask", "close")
        if c in frame.columns
    }
    price, bid, ask, close = (cols.get(c) for c in ("price", "bid", "ask", "close"))

    def at(i: int) -> int | None:
        if price is not None and price[i] is not None:
            return int(price[i])
        if bid is not None and ask is not None and bid[i] is not None and ask[i] is not None:
            return (int(bid[i]) + int(ask[i])) // 2
        if close is not None and close[i] is not None:
            return int(close[i])
        return None

    return at
