"""The accountant's average cost: a fill that closes the whole position books its PnL in
integers, the value the average cost's fraction gives.

The oracle is the rule written with fractions throughout: ``(price - cost / position) x
closed x direction`` on every reducing fill. Random fills (opening, adding, reducing, closing
exactly, flipping) through ``_apply_fill`` and through the oracle give equal positions,
costs, realised PnL, closing PnLs and round trips.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.backtest._accounting import _apply_fill, _Trade


def _oracle(fills: list[tuple[int, int]]) -> tuple[int, Fraction, Fraction, list[Fraction]]:
    pos, cost, realised, closing = 0, Fraction(0), Fraction(0), []
    for q, price in fills:
        if pos and (pos > 0) != (q > 0):
            closed = min(abs(q), abs(pos))
            direction = 1 if pos > 0 else -1
            avg = cost / pos
            pnl = (price - avg) * closed * direction
            closing.append(pnl)
            realised += pnl
            cost -= avg * closed * direction
            pos += closed * (1 if q > 0 else -1)
            q += closed * (-1 if q > 0 else 1)
            if pos == 0:
                cost = Fraction(0)
        cost += price * q
        pos += q
    return pos, cost, realised, closing


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-40, 40).filter(bool), st.integers(1, 10**9)),
                min_size=1, max_size=30))
def test_fills_book_what_the_fraction_rule_books(fills: list[tuple[int, int]]) -> None:
    position: dict[str, int] = {}
    basis: dict[str, Fraction | int] = {}
    realised: dict[str, Fraction | int] = {}
    closing: list[Fraction] = []
    open_trade: dict[str, _Trade] = {}
    trades: list[_Trade] = []
    for k, (q, price) in enumerate(fills):
        _apply_fill("X", q, price, 3, k, position, basis, realised, closing, open_trade, trades)
    pos, cost, pnl, closed = _oracle(fills)
    assert position["X"] == pos
    assert basis["X"] == cost
    assert realised["X"] == pnl
    assert closing == closed
    assert all(type(c) is Fraction for c in closing)
