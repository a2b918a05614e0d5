"""Example tick strategy: order-flow imbalance, in exact integer arithmetic.

Each trade is classified by the quote rule: at or above the last ask it was buyer-initiated, at
or below the last bid seller-initiated, in between unclassified. Over the last ``window``
batches, per symbol, ``imbalance = buy volume - sell volume`` against ``total`` classified
volume: the strategy goes long ``quantity`` when ``100 * imbalance >= enter_pct * total``, short
when ``<= -enter_pct * total``, and back to flat once ``100 * |imbalance| < exit_pct * total``.
Imports only the strategy contract, polars and the standard library: it can be promoted as is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from zcbench.strategy import Batch, Side, Signal, Strategy

__all__ = ["OrderFlowImbalance", "OrderFlowParams"]


@dataclass(frozen=True)
class OrderFlowParams:
    """Window in batches, entry and exit thresholds in percent, order size in units."""

    window: int = 4
    enter_pct: int = 15
    exit_pct: int = 3
    quantity: int = 100

    def __post_init__(self) -> None:
        if self.window <= 0 or self.quantity <= 0:
            raise ValueError("window and quantity must be positive")
        if not 0 <= self.exit_pct <= self.enter_pct <= 100:
            raise ValueError(
                f"need 0 <= exit_pct <= enter_pct <= 100, got {self.exit_pct}, {self.enter_pct}"
            )


class OrderFlowImbalance(Strategy):
    """Trade with the recent imbalance between buyer- and seller-initiated volume."""

    name = "order_flow_imbalance"
    params_type = OrderFlowParams
    input_fields = ("kind", "price", "size", "bid", "ask")

    def __init__(self, params: OrderFlowParams) -> None:
        super().__init__(params)
        self.p: OrderFlowParams = params
        self._bid: dict[str, int] = {}
        self._ask: dict[str, int] = {}
        self._flow: dict[str, deque[tuple[int, int]]] = {}
        self._buy: dict[str, int] = {}
        self._sell: dict[str, int] = {}
        self._target: dict[str, int] = {}

    def _classified(self, events: pl.DataFrame) -> dict[str, tuple[int, int]]:
        """Buy and sell volume per symbol in this batch; updates the last quotes."""
        last = pl.col("symbol")
        quoted = events.with_columns(
            pl.col("bid")
            .forward_fill()
            .over("symbol")
            .fill_null(last.replace_strict(self._bid, default=None, return_dtype=pl.Int64)),
            pl.col("ask")
            .forward_fill()
            .over("symbol")
            .fill_null(last.replace_strict(self._ask, default=None, return_dtype=pl.Int64)),
        )
        flow = (
            quoted.filter(pl.col("kind") == "trade")
            .group_by("symbol")
            .agg(
                pl.col("size").filter(pl.col("price") >= pl.col("ask")).sum().alias("buy"),
                pl.col("size").filter(pl.col("price") <= pl.col("bid")).sum().alias("sell"),
            )
        )
        quotes = (
            events.filter(pl.col("kind") == "quote")
            .group_by("symbol")
            .agg(pl.col("bid").last(), pl.col("ask").last())
        )
        for symbol, bid, ask in quotes.iter_rows():
            self._bid[symbol], self._ask[symbol] = bid, ask
        return {symbol: (buy, sell) for symbol, buy, sell in flow.iter_rows()}

    def on_batch(self, batch: Batch) -> Sequence[Signal]:
        p = self.p
        flow = self._classified(batch.events)
        for symbol in flow:
            self._flow.setdefault(symbol, deque())
        signals: list[Signal] = []
        for symbol in sorted(self._flow):
            buy, sell = flow.get(symbol, (0, 0))
            window = self._flow[symbol]
            window.append((buy, sell))
            self._buy[symbol] = self._buy.get(symbol, 0) + buy
            self._sell[symbol] = self._sell.get(symbol, 0) + sell
            if len(window) > p.window:
                old_buy, old_sell = window.popleft()
                self._buy[symbol] -= old_buy
                self._sell[symbol] -= old_sell
            imbalance = self._buy[symbol] - self._sell[symbol]
            total = self._buy[symbol] + self._sell[symbol]
            current = self._target.get(symbol, 0)
            target = current
            if total > 0 and 100 * imbalance >= p.enter_pct * total:
                target = p.quantity
            elif total > 0 and 100 * imbalance <= -p.enter_pct * total:
                target = -p.quantity
            elif 100 * abs(imbalance) < p.exit_pct * total:
                target = 0
            if target != current:
                side: Side = "buy" if target > current else "sell"
                signals.append(Signal(symbol=symbol, side=side, quantity=abs(target - current)))
                self._target[symbol] = target
        return signals
