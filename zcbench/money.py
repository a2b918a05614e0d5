"""Money: one representation and one way to show it (DESIGN.md, "Money").

Prices are integer ticks of ``1 / PRICE_SCALE`` (1/10,000) currency unit and quantities integer
units, so an amount of money (PnL, cash, notional) is an exact integer number of ticks × units:
**ticks** for short, each 1/10,000 of a currency unit. Code keeps amounts as ``int`` ticks; JSON
names them with a ``_ticks`` suffix (``"pnl_ticks": 1275000``); people see them in currency units
through :func:`format_money` (``"+127.50 currency units"``), exact, never rounded.

An account (a backtest's or a live run's, :class:`zcbench.marketdata.Account`) may count in a
finer unit (an instrument quoted to eight decimals makes ``scale`` 10**8) and knows its
currency's name: the same formatter takes both (``format_money(amount, scale=10**8,
currency="USD")``), so every surface shows money one way; a live run records its account, and
its surfaces show the recorded currency (:data:`MONEY_UNIT` only where nothing names one).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Final

from zcbench.strategy import PRICE_SCALE

__all__ = ["MONEY_UNIT", "TICK_UNIT", "format_money", "money", "ticks_of"]

MONEY_UNIT: Final = "currency units"
"""The unit's name when no currency is known (a run that recorded none)."""

TICK_UNIT: Final = f"tick (1/{PRICE_SCALE:,} currency unit)"
"""What one unit of a ``*_ticks`` JSON field is."""

_DIGITS: Final = len(str(PRICE_SCALE)) - 1


def _digits(scale: int) -> int:
    digits = len(str(scale)) - 1
    if type(scale) is not int or scale < 1 or scale != 10**digits:
        raise ValueError(f"a money scale is a power of ten, got {scale!r}")
    return digits


def ticks_of(amount: float, *, scale: int = PRICE_SCALE) -> int:
    """``amount`` currency units as ticks of ``1 / scale``, exact from its decimal text
    (``0.1`` is 1,000 ticks, not the float's nearest), rounded to the nearest tick."""
    return round(Fraction(str(amount)) * scale)


def money(ticks: int, *, scale: int = PRICE_SCALE) -> Decimal:
    """``ticks`` (each ``1 / scale`` of a currency unit) as an exact amount in currency units."""
    if type(ticks) is not int:
        raise TypeError(f"an amount of money is an int number of ticks, got {type(ticks).__name__}")
    digits = _DIGITS if scale == PRICE_SCALE else _digits(scale)
    return Decimal(ticks).scaleb(-digits)


def format_money(
    ticks: int,
    *,
    signed: bool = False,
    unit: bool = True,
    scale: int = PRICE_SCALE,
    currency: str = MONEY_UNIT,
) -> str:
    """``ticks`` in currency units, grouped, with at least two decimals and as many more as
    it needs to be exact: ``1_275_000`` is ``"127.50 currency units"``, ``5`` is
    ``"0.0005 currency units"``. ``signed`` puts a ``+`` before positive amounts; ``unit=False``
    leaves the unit out (for a place that names it once, such as a column heading).
    ``scale``: how many ticks make one currency unit (a power of ten); ``currency``: the
    unit's name where it is known (``"USD"``)."""
    amount = money(ticks, scale=scale)
    cents = amount.quantize(Decimal("0.01"))
    shown = cents if cents == amount else amount
    text = f"{shown:+,f}" if signed and ticks else f"{shown:,f}"  # positional, never 5E-8
    return f"{text} {currency}" if unit else text
