"""Buying power: the one rule deciding whether an account can carry an order, backtest and live.

Both the backtester's accounting and the host's execution layer ask :func:`buying_power_reason`;
neither owns the rule, so a backtest refuses exactly the orders a live run would for lack of
capital. The rule, in exact integers (money in the caller's smallest unit):

    requirement = long_notional / leverage + short_notional * short_margin

An order is accepted when, after it (its fee paid, positions at their marks), the requirement is
at most the equity, or when it does not raise the requirement at all (an order that reduces
exposure is never refused for lack of capital, so a position can always be closed). With the
defaults (``leverage`` 1, ``short_margin`` 1) this is a cash account: a buy cannot take cash
below zero, and a short needs its full notional in equity besides its proceeds. Cash goes below
zero only with ``leverage`` above 1.

Refusals are named: ``insufficient_cash`` (no leverage and no short position involved: the
order costs more than the cash) and ``insufficient_margin`` (anything involving leverage or a
short). This module imports nothing of zcbench but the error tree.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from zcbench.errors import UsageError

__all__ = ["INSUFFICIENT_CASH", "INSUFFICIENT_MARGIN", "BuyingPower", "buying_power_reason"]

INSUFFICIENT_CASH: Final = "insufficient_cash"
INSUFFICIENT_MARGIN: Final = "insufficient_margin"


@dataclass(frozen=True, slots=True)
class BuyingPower:
    """How much exposure equity carries: ``leverage`` >= 1 on longs (1: no borrowing) and
    ``short_margin`` > 0, the share of a short's notional equity must cover."""

    leverage: float = 1.0
    short_margin: float = 1.0

    def __post_init__(self) -> None:
        if not (isinstance(self.leverage, (int, float)) and 1 <= self.leverage <= 100):
            raise UsageError(f"leverage must be in [1, 100], got {self.leverage!r}")
        if not (isinstance(self.short_margin, (int, float)) and 0 < self.short_margin <= 100):
            raise UsageError(f"short_margin must be in (0, 100], got {self.short_margin!r}")

    def requirement(self, long_notional: int, short_notional: int) -> Fraction:
        """The equity needed to carry these gross exposures (exact, from the decimal text)."""
        a, b, c, d = _terms(self.leverage, self.short_margin)
        return Fraction(long_notional * b * d + short_notional * c * a, a * d)


@functools.lru_cache(maxsize=64)
def _terms(leverage: float, short_margin: float) -> tuple[int, int, int, int]:
    """``leverage = a / b`` and ``short_margin = c / d`` exactly, from their decimal text."""
    lev, margin = Fraction(str(leverage)), Fraction(str(short_margin))
    return lev.numerator, lev.denominator, margin.numerator, margin.denominator


def buying_power_reason(
    rule: BuyingPower,
    *,
    equity_after: int,
    long_before: int,
    short_before: int,
    long_after: int,
    short_after: int,
) -> str:
    """``""`` when the account can carry the order, else the refusal's name (see above).

    Notionals are gross (non-negative) sums of ``|position| * mark`` over symbols, before and
    after the order; ``equity_after`` is cash plus long minus short after the order and its fee.
    """
    # everything times a * d, so the comparisons stay in integers
    a, b, c, d = _terms(rule.leverage, rule.short_margin)
    need = long_after * b * d + short_after * c * a
    if need <= long_before * b * d + short_before * c * a or need <= equity_after * a * d:
        return ""
    if rule.leverage == 1 and short_before == 0 and short_after == 0:
        return INSUFFICIENT_CASH
    return INSUFFICIENT_MARGIN
