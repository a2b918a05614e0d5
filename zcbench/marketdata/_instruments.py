"""Instruments: tick size, lot size and currency per symbol, and each one's integer price unit.

An instrument's prices are integers of ``1 / price_scale`` of its currency, where
``price_scale`` is ``10 ** max(4, decimals of tick_size)``: at least the schema's
``PRICE_SCALE`` (so every 4-decimal instrument keeps the integers it always had), finer when the
tick is finer (a 0.00001 FX tick gives 100,000 per unit, a 0.00000001 crypto tick 10**8). A price
is valid when it is a whole number of ticks: an integer multiple of ``tick_units = tick_size *
price_scale``. Nothing is ever rounded: the loaders refuse a price off its tick, naming the row.

The instruments file is CSV with ``symbol, currency, tick_size, lot_size`` (``data/instruments.csv``
holds the defaults for the sample data). ``lot_size`` is in units of quantity: an order for a
quantity that is not a multiple of it is refused by the backtest (``lot_size``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Final

import polars as pl

from zcbench.errors import DataError
from zcbench.marketdata._errors import MarketDataError
from zcbench.strategy import PRICE_SCALE

__all__ = [
    "DEFAULT_INSTRUMENT",
    "Account",
    "Instrument",
    "Instruments",
    "default_instruments",
    "load_instruments",
]

_DECIMAL: Final = re.compile(r"^(0|[1-9][0-9]*)(?:\.([0-9]+))?$")
_MAX_DECIMALS: Final = 12
_COLUMNS: Final = ("symbol", "currency", "tick_size", "lot_size")
_DATA: Final = Path(__file__).resolve().parents[2] / "data"


@dataclass(frozen=True, slots=True)
class Instrument:
    """One instrument: ``tick_size`` as decimal text (exact), ``lot_size`` in units."""

    symbol: str
    currency: str = "USD"
    tick_size: str = "0.0001"
    lot_size: int = 1

    def __post_init__(self) -> None:
        where = f"instrument {self.symbol!r}"
        match = _DECIMAL.match(self.tick_size)
        if not match or Fraction(self.tick_size) <= 0:
            raise DataError(
                f"{where}: tick_size must be a positive decimal, got {self.tick_size!r}"
            )
        if len((match.group(2) or "").rstrip("0")) > _MAX_DECIMALS:
            raise DataError(f"{where}: tick_size has more than {_MAX_DECIMALS} decimals")
        if type(self.lot_size) is not int or self.lot_size <= 0:
            raise DataError(f"{where}: lot_size must be a positive integer, got {self.lot_size!r}")
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise DataError(f"{where}: currency must be a 3-letter code, got {self.currency!r}")

    @property
    def decimals(self) -> int:
        """Decimals of the price unit: at least 4, more when the tick is finer."""
        frac = (_DECIMAL.match(self.tick_size).group(2) or "").rstrip("0")  # type: ignore[union-attr]
        return max(4, len(frac))

    @property
    def price_scale(self) -> int:
        """Integer price units per unit of currency."""
        return int(10**self.decimals)

    @property
    def tick_units(self) -> int:
        """The tick in integer price units (prices must be multiples of it)."""
        return int(Fraction(self.tick_size) * self.price_scale)


DEFAULT_INSTRUMENT: Final = Instrument(symbol="*")
"""What a symbol absent from a lenient instruments table gets (the schema's PRICE_SCALE)."""
assert DEFAULT_INSTRUMENT.price_scale == PRICE_SCALE


@dataclass(frozen=True, slots=True)
class Instruments(Mapping[str, Instrument]):
    """A table of instruments by symbol. ``strict``: a symbol not in it is an error (a table
    the user gave); otherwise it gets :data:`DEFAULT_INSTRUMENT` (the sample defaults)."""

    entries: tuple[Instrument, ...] = ()
    strict: bool = False
    source: str = "<instruments>"

    def __getitem__(self, symbol: str) -> Instrument:
        for item in self.entries:
            if item.symbol == symbol:
                return item
        raise KeyError(symbol)

    def __iter__(self) -> Iterator[str]:
        return iter(item.symbol for item in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def _each(self, symbols: Iterable[str]) -> dict[str, Instrument]:
        """Each of ``symbols``'s instrument; a symbol a strict table lacks: :class:`DataError`."""
        found: dict[str, Instrument] = {}
        for symbol in sorted(set(symbols)):
            instrument = self.of(symbol)
            if instrument is None:
                raise DataError(f"unknown instrument {symbol!r}: not in {self.source}")
            found[symbol] = instrument
        return found

    def currency_of(self, symbols: Iterable[str]) -> str:
        """The one currency an account trading ``symbols`` counts money in: every surface that
        names the unit of an amount (the backtest's table, the live run's summary and progress
        line) asks this, so the same data is shown in the same unit everywhere. No symbols: the
        default instrument's. Raises :class:`~zcbench.errors.DataError` for a symbol a strict
        table lacks or for instruments in several currencies (no FX conversion is modelled)."""
        found = self._each(symbols)
        currencies = sorted({i.currency for i in found.values()}) or [DEFAULT_INSTRUMENT.currency]
        if len(currencies) > 1:
            raise DataError(
                f"instruments in {', '.join(currencies)}; one account currency is supported "
                "(no FX conversion is modelled)"
            )
        return currencies[0]

    def money_units(self, symbols: Iterable[str]) -> tuple[int, dict[str, int]]:
        """The unit of money of an account trading ``symbols``: the finest price unit among
        them (``money_scale`` of it make one currency unit, so every notional is exact), and per
        symbol how many of it one of the symbol's price units is. The backtest's accounting and
        a live run's capital count in it. A symbol a strict table lacks: :class:`DataError`."""
        found = self._each(symbols)
        scale = max([i.price_scale for i in found.values()], default=PRICE_SCALE)
        return scale, {s: scale // i.price_scale for s, i in found.items()}

    def account(self, symbols: Iterable[str]) -> Account:
        """The account that trades ``symbols``: the one currency (:meth:`currency_of`) and the
        unit of money, the finest price unit among their instruments, so every notional is an
        exact integer. The backtest and the live run both ask this; raises
        :class:`~zcbench.errors.DataError` as :meth:`currency_of` does."""
        names = sorted(set(symbols))
        currency = self.currency_of(names)
        scale, units = self.money_units(names)
        found = {s: i for s in names if (i := self.of(s)) is not None}
        return Account(
            currency=currency,
            money_scale=scale,
            units=units,
            ticks={s: i.tick_units for s, i in found.items()},
            lots={s: i.lot_size for s, i in found.items()},
        )

    def of(self, symbol: str) -> Instrument | None:
        """The instrument of ``symbol``; the default one, or None when the table is strict."""
        try:
            return self[symbol]
        except KeyError:
            return None if self.strict else DEFAULT_INSTRUMENT


@dataclass(frozen=True)
class Account:
    """The money of an account: its ``currency``, its unit (``money_scale`` units make one unit
    of the currency, a power of ten) and per symbol ``units`` (account units in one of the
    symbol's integer price units), ``ticks`` (its tick in price units) and ``lots``.

    An amount of money (cash, notional, PnL) is an ``int`` of account units: a price of a
    symbol times a quantity times that symbol's ``units``. Made by
    :meth:`Instruments.account`; :meth:`to_json` is what ``summary.json`` and the journal's
    header record, so a reader shows the run's money in the unit the run counted it."""

    currency: str = DEFAULT_INSTRUMENT.currency
    money_scale: int = PRICE_SCALE
    units: Mapping[str, int] = field(default_factory=dict)
    ticks: Mapping[str, int] = field(default_factory=dict)
    lots: Mapping[str, int] = field(default_factory=dict)

    def unit_of(self, symbol: str) -> int:
        """Account units in one price unit of ``symbol``; 1 for a symbol the account was not
        made for (its prices taken as in the account's unit), as the backtest's ledger and the
        execution layer count it, so every surface gives the same amount."""
        return self.units.get(symbol, 1)

    def price_scale_of(self, symbol: str) -> int:
        """Integer price units of ``symbol`` in one unit of the currency."""
        return self.money_scale // self.unit_of(symbol)

    def to_json(self) -> dict[str, object]:
        """``{"currency", "money_scale", "units"}``: the facts a reader needs to show money."""
        return {"currency": self.currency, "money_scale": self.money_scale,
                "units": dict(sorted(self.units.items()))}

    @classmethod
    def from_json(cls, obj: Mapping[str, object], *, source: str) -> Account | None:
        """The account recorded in ``obj`` (a run's ``summary.json`` or journal header, which
        hold :meth:`to_json`'s keys), or None when it records none (a run made before runs
        recorded their money); malformed fields raise :class:`~zcbench.errors.DataError`
        naming ``source``."""
        if "currency" not in obj and "money_scale" not in obj:
            return None
        currency, scale, units = obj.get("currency"), obj.get("money_scale"), obj.get("units")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
            raise DataError(f"{source}: currency must be a 3-letter code, got {currency!r}")
        if type(scale) is not int or scale < 1 or scale != 10 ** (len(str(scale)) - 1):
            raise DataError(f"{source}: money_scale must be a power of ten, got {scale!r}")
        if not isinstance(units, dict) or not all(
            isinstance(k, str) and type(v) is int and 0 < v <= scale for k, v in units.items()
        ):
            raise DataError(f"{source}: units must map symbols to positive integers")
        return cls(currency=currency, money_scale=scale, units=dict(units))


def load_instruments(path: str | Path, *, strict: bool = True) -> Instruments:
    """An instruments CSV (see the module docstring); every problem names its row and column."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise MarketDataError("no such file", source=source, row=None, column=None)
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except Exception as exc:  # polars raises several types for unreadable files
        raise MarketDataError(
            f"cannot be read as CSV ({type(exc).__name__})", source=source, row=None, column=None
        ) from None
    for name in _COLUMNS:
        if name not in frame.columns:
            raise MarketDataError(
                "required column is missing", source=source, row=None, column=name
            )
    items: list[Instrument] = []
    seen: set[str] = set()
    for row, rec in enumerate(frame.select(_COLUMNS).iter_rows(named=True), start=1):
        for name in _COLUMNS:
            if rec[name] is None or not rec[name].strip():
                raise MarketDataError("missing value", source=source, row=row, column=name)
        symbol = rec["symbol"].strip()
        if symbol in seen:
            raise MarketDataError(
                f"instrument {symbol!r} is listed twice", source=source, row=row, column="symbol"
            )
        seen.add(symbol)
        lot = rec["lot_size"].strip()
        if not lot.isdigit():
            raise MarketDataError(
                f"expected a positive integer, got {lot!r}",
                source=source,
                row=row,
                column="lot_size",
            )
        try:
            items.append(
                Instrument(symbol, rec["currency"].strip(), rec["tick_size"].strip(), int(lot))
            )
        except DataError as exc:
            column = next((c for c in _COLUMNS if c in str(exc)), None)
            raise MarketDataError(str(exc), source=source, row=row, column=column) from None
    return Instruments(tuple(items), strict=strict, source=source)


def default_instruments() -> Instruments:
    """The committed ``data/instruments.csv``, lenient (unknown symbols get the default)."""
    path = _DATA / "instruments.csv"
    if not path.is_file():
        return Instruments()
    return load_instruments(path, strict=False)
