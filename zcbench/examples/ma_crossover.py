"""Example daily-bar strategy: a moving-average crossover, in exact integer arithmetic.

Long ``quantity`` while the fast simple moving average of closes is above the slow one, flat (or
short, with ``allow_short``) while it is below; unchanged on a tie. Averages are compared without
division (``sum_fast * slow`` against ``sum_slow * fast``), so no float rounding can make two runs
disagree.

It trades to its target from its actual position: the feedback context (``on_batch(batch,
context)``) says what the position is after a risk refusal or a partial fill, and the next
order is the difference. Without feedback (no context is ever given) it assumes its orders
filled, as a strategy that sees market data only must. Imports only the strategy contract and
the standard library: it can be promoted as is.

It keeps its windows across runs (the snapshot contract, ``zcbench.strategy._snapshot``):
``snapshot`` encodes each symbol's window of closes, its target and the position it holds;
``restore`` rebuilds the running sums from the windows, so a run that continues another signals
as one run over both stretches would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from zcbench.strategy import (
    Batch,
    Context,
    Side,
    Signal,
    Strategy,
    decode_state,
    encode_state,
)

__all__ = ["MACrossover", "MACrossoverParams"]


@dataclass(frozen=True)
class MACrossoverParams:
    """Window lengths in bars, order size in units, and whether to go short."""

    fast: int = 20
    slow: int = 50
    quantity: int = 100
    allow_short: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.fast < self.slow:
            raise ValueError(f"need 0 < fast < slow, got fast={self.fast} slow={self.slow}")
        if self.quantity <= 0:
            raise ValueError(f"quantity must be positive, got {self.quantity}")


class MACrossover(Strategy):
    """Fast/slow simple moving-average crossover on bar closes, per symbol."""

    name = "ma_crossover"
    params_type = MACrossoverParams
    input_fields = ("close",)

    def __init__(self, params: MACrossoverParams) -> None:
        super().__init__(params)
        self.p: MACrossoverParams = params
        self._closes: dict[str, deque[int]] = {}
        self._sum_fast: dict[str, int] = {}
        self._sum_slow: dict[str, int] = {}
        self._target: dict[str, int] = {}
        self._held: dict[str, int] = {}  # the position: told by the context, else assumed

    def _update(self, symbol: str, close: int) -> int | None:
        """Add a close; the new target position, or None while the slow window fills."""
        p = self.p
        window = self._closes.setdefault(symbol, deque())
        window.append(close)
        fast = self._sum_fast.get(symbol, 0) + close
        slow = self._sum_slow.get(symbol, 0) + close
        if len(window) > p.fast:
            fast -= window[-1 - p.fast]
        if len(window) > p.slow:
            slow -= window.popleft()
        self._sum_fast[symbol], self._sum_slow[symbol] = fast, slow
        if len(window) < p.slow:
            return None
        current = self._target.get(symbol, 0)
        above, below = fast * p.slow, slow * p.fast
        if above > below:
            return p.quantity
        if above < below:
            return -p.quantity if p.allow_short else 0
        return current

    def on_batch(self, batch: Batch, context: Context | None = None) -> Sequence[Signal]:
        if context is not None:  # the positions after every outcome so far (absent: flat)
            self._held = dict(context.positions)
        signals: list[Signal] = []
        events = batch.events
        # the rows in one call: a one-bar batch costs a third of reading two columns
        names = events.columns
        at_symbol, at_close = names.index("symbol"), names.index("close")
        for row in events.rows():
            symbol, close = row[at_symbol], row[at_close]
            if close is None:
                continue
            target = self._update(symbol, close)
            if target is None:
                continue
            self._target[symbol] = target
            held = self._held.get(symbol, 0)
            if target == held:
                continue
            side: Side = "buy" if target > held else "sell"
            signals.append(Signal(symbol=symbol, side=side, quantity=abs(target - held)))
            self._held[symbol] = target
        return signals

    def snapshot(self) -> bytes:
        """The windows, targets and held positions (sums are rebuilt from the windows)."""
        return encode_state({
            "closes": {s: list(w) for s, w in self._closes.items()},
            "target": dict(self._target),
            "held": dict(self._held),
        })

    def restore(self, state: bytes) -> None:
        """The state :meth:`snapshot` encoded; ``ValueError`` for anything else."""
        doc = decode_state(state)
        if not isinstance(doc, dict) or set(doc) != {"closes", "target", "held"}:
            raise ValueError("not a crossover state")
        closes, target, held = doc["closes"], doc["target"], doc["held"]
        if not all(isinstance(m, dict) for m in (closes, target, held)):
            raise ValueError("not a crossover state")
        for mapping in (target, held):
            if not all(type(v) is int for v in mapping.values()):
                raise ValueError("not a crossover state")
        for window in closes.values():
            if (not isinstance(window, list) or len(window) > self.p.slow
                    or not all(type(c) is int for c in window)):
                raise ValueError("not a crossover state")
        self._closes = {s: deque(w) for s, w in closes.items()}
        self._sum_fast = {s: sum(w[-self.p.fast:]) for s, w in closes.items()}
        self._sum_slow = {s: sum(w) for s, w in closes.items()}
        self._target, self._held = dict(target), dict(held)
