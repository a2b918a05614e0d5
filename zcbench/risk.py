"""The risk layer's vocabulary and its capital rule: a refusal as data, and buying power.

A refused order is a :class:`Refusal`: which control refused it (``control``, a name from
:data:`CONTROLS`), the limit's value in force (``limit``), the value the order would have
reached (``attempted``) and what the text needs besides (``reference``, ``detail``). Its
human-readable reason, :attr:`Refusal.text`, is derived from those fields and never parsed
back: the journal stores the fields beside the text, and the feedback, the control history and
the evidence pack read the fields.

Buying power: the one rule deciding whether an account can carry an order, backtest and live.

Both the backtester's accounting and the host's execution layer ask it
(:func:`buying_power_refusal`); neither owns the rule, so a
backtest refuses exactly the orders a live run would for lack of capital. The rule, in exact
integers (money in the caller's smallest unit):

    requirement = long_notional / leverage + short_notional * short_margin

An order is accepted when, after it (its fee paid, positions at their marks), the requirement is
at most the equity, or when it does not raise the requirement at all (an order that reduces
exposure is never refused for lack of capital, so a position can always be closed). With the
defaults (``leverage`` 1, ``short_margin`` 1) this is a cash account: a buy cannot take cash
below zero, and a short needs its full notional in equity besides its proceeds. Cash goes below
zero only with ``leverage`` above 1.

Its refusals are named: ``insufficient_cash`` (no leverage and no short position involved: the
order costs more than the cash) and ``insufficient_margin`` (anything involving leverage or a
short). This module imports nothing of zcbench but the error tree.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from zcbench.errors import UsageError

__all__ = [
    "CONTROLS",
    "DEFAULT_INITIAL_CASH",
    "INSUFFICIENT_CASH",
    "INSUFFICIENT_MARGIN",
    "LIMIT_NOT_REACHED",
    "BuyingPower",
    "CapitalState",
    "Refusal",
    "buying_power_refusal",
]

INSUFFICIENT_CASH: Final = "insufficient_cash"
INSUFFICIENT_MARGIN: Final = "insufficient_margin"
LIMIT_NOT_REACHED: Final = "limit_not_reached"

DEFAULT_INITIAL_CASH: Final = 1_000_000
"""The capital an account starts with when none is given, in whole currency units: ``zcbench
run`` and ``zcbench backtest`` (``--initial-cash``), the live panel and the demo."""

CONTROLS: Final = (
    "kill_switch",  # limit: 1 (engaged); detail: why it was engaged
    "no_market_price",  # detail: the symbol
    "price_collar_bps",  # limit: the collar; attempted: the limit price; reference: the market
    "max_position",  # limit; attempted: the position after the order
    "max_notional",  # limit; attempted: the notional; detail: "order" or "gross"
    "max_orders_per_s",  # limit; attempted: the orders in the window with this one
    INSUFFICIENT_CASH,  # limit: the equity after the order; attempted: the equity it needs
    INSUFFICIENT_MARGIN,  # the same, with leverage or a short involved
    LIMIT_NOT_REACHED,  # not a risk refusal: limit: the limit price; attempted: the market
    "invalid_order",  # detail: why the signal makes no order (its hints)
    "lot_size",  # limit: the instrument's lot; attempted: the order's quantity
    "venue",  # detail: the venue's own text
)
"""Every control a refusal can name: the :class:`zcbench.host.RiskLimits` fields by their field
names, the buying-power rule's two names, and the outcomes that are not risk limits."""

_NOTIONAL_SCOPES: Final = ("order", "gross")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an order was not placed (or, ``limit_not_reached``, found no price inside its
    limit), as data; :attr:`text` is its reason for people. The fields each control uses are
    listed beside :data:`CONTROLS`; the others stay None or empty."""

    control: str
    limit: int | None = None
    attempted: int | None = None
    reference: int | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.control not in CONTROLS:
            raise UsageError(f"refusal control {self.control!r}: one of {', '.join(CONTROLS)}")
        for name in ("limit", "attempted", "reference"):
            value = getattr(self, name)
            if value is not None and type(value) is not int:
                raise UsageError(f"refusal {name} must be an int or None, got {value!r}")
        if self.control == "max_notional" and self.detail not in _NOTIONAL_SCOPES:
            raise UsageError("a max_notional refusal's detail is 'order' or 'gross'")

    @property
    def text(self) -> str:
        """The reason as people read it in the journal, the feedback and the evidence."""
        c, lim, got = self.control, self.limit, self.attempted
        if c == "kill_switch":
            return f"kill switch: {self.detail}"
        if c == "no_market_price":
            return f"no market price yet for {self.detail}"
        if c == "price_collar_bps":
            return f"limit {got} outside the {lim} bp collar around {self.reference}"
        if c == "max_position":
            return f"position would be {got}, limit {lim}"
        if c == "max_notional":
            if self.detail == "order":
                return f"order notional {got} over {lim}"
            return f"gross notional would be {got}, limit {lim}"
        if c == "max_orders_per_s":
            return f"order rate over {lim}/s"
        if c in (INSUFFICIENT_CASH, INSUFFICIENT_MARGIN):
            return f"{c}: the account after the order needs {got} of equity and would have {lim}"
        if c == LIMIT_NOT_REACHED:
            return f"market {got} through limit {lim}"
        if c == "lot_size":
            return f"quantity {got} is not a whole number of lots of {lim}"
        return self.detail


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


@dataclass(frozen=True, slots=True)
class CapitalState:
    """An account under the buying-power rule now, in its unit of money: ``cash`` (the capital
    plus what fills paid and received), ``equity`` (cash plus longs minus shorts at their
    marks) and ``used``, the equity its positions need (:meth:`BuyingPower.requirement`,
    rounded up): the buying power in use. An order that raises ``used`` above ``equity`` is
    refused (``insufficient_cash`` / ``insufficient_margin``)."""

    cash: int
    equity: int
    used: int


@functools.lru_cache(maxsize=64)
def _terms(leverage: float, short_margin: float) -> tuple[int, int, int, int]:
    """``leverage = a / b`` and ``short_margin = c / d`` exactly, from their decimal text."""
    lev, margin = Fraction(str(leverage)), Fraction(str(short_margin))
    return lev.numerator, lev.denominator, margin.numerator, margin.denominator


def buying_power_refusal(
    rule: BuyingPower,
    *,
    equity_after: int,
    long_before: int,
    short_before: int,
    long_after: int,
    short_after: int,
) -> Refusal | None:
    """None when the account can carry the order, else its :class:`Refusal` (see above):
    ``limit`` the equity after the order, ``attempted`` the equity needed (rounded up).

    Notionals are gross (non-negative) sums of ``|position| * mark`` over symbols, before and
    after the order; ``equity_after`` is cash plus long minus short after the order and its fee.
    """
    # everything times a * d, so the comparisons stay in integers
    a, b, c, d = _terms(rule.leverage, rule.short_margin)
    need = long_after * b * d + short_after * c * a
    if need <= long_before * b * d + short_before * c * a or need <= equity_after * a * d:
        return None
    cash = rule.leverage == 1 and short_before == 0 and short_after == 0
    return Refusal(INSUFFICIENT_CASH if cash else INSUFFICIENT_MARGIN, limit=equity_after,
                   attempted=-(-need // (a * d)))

