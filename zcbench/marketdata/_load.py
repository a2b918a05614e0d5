"""Loading market data files into event frames, strictly.

Two file shapes are read, each from CSV or parquet:

- **event files**: columns named as in :data:`zcbench.strategy.EVENT_SCHEMA` (``ts`` in integer
  nanoseconds, prices in integer ticks); ``ts``, ``symbol`` and ``kind`` are required, the rest
  optional;
- **daily OHLCV files**: ``Date, Open, High, Low, Close, Volume`` (any letter case, extra columns
  ignored), prices in currency units; they become ``bar`` events with prices as exact integers
  of the instrument's price unit (:mod:`zcbench.marketdata._instruments`), read from their
  decimal text: a price with more decimals than the instrument's tick, or off its tick, is
  refused, never rounded.

Every problem is a :class:`MarketDataError` naming the file, the 1-based data row (the header is
not a row) and the column, so a person can open the file and look. Nothing is coerced silently: a
float where an integer belongs, a NaN, a negative price, an unsorted or duplicated timestamp all
refuse.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import Final

import polars as pl

from zcbench.marketdata._errors import MarketDataError
from zcbench.marketdata._instruments import Instrument, Instruments, default_instruments
from zcbench.strategy import EVENT_SCHEMA, KINDS

__all__ = [
    "check_ticks",
    "load_events",
    "load_market_data",
    "load_ohlcv",
    "normalise_events",
    "ohlcv_to_events",
    "validate_events",
    "write_events",
]

_PRICE_FIELDS: Final = ("price", "bid", "ask", "open", "high", "low", "close")
_SIZE_FIELDS: Final = ("size", "bid_size", "ask_size", "volume")
_NEEDED_BY_KIND: Final = {
    "trade": ("price", "size"),
    "quote": ("bid", "ask", "bid_size", "ask_size"),
    "bar": ("open", "high", "low", "close", "volume"),
}
_OHLCV_COLUMNS: Final = ("date", "open", "high", "low", "close", "volume")
_DAY_NS: Final = 86_400 * 1_000_000_000


# --------------------------------------------------------------------------------------------
# Reading raw tables


def _read_raw(path: Path) -> pl.DataFrame:
    """The file as a frame: CSV with every column as text, parquet with its own types."""
    source = str(path)
    if not path.is_file():
        raise MarketDataError("no such file", source=source, row=None, column=None)
    if path.stat().st_size == 0:
        raise MarketDataError("the file is empty", source=source, row=None, column=None)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pl.read_parquet(path)
        elif suffix in (".csv", ".txt"):
            frame = pl.read_csv(path, infer_schema=False, null_values=[""])
        else:
            raise MarketDataError(
                f"unknown file type {suffix!r}; use .csv or .parquet",
                source=source,
                row=None,
                column=None,
            )
    except MarketDataError:
        raise
    except Exception as exc:  # polars and pyarrow raise many types for unreadable files
        if suffix != ".parquet":
            _raise_if_ragged(path)
        raise MarketDataError(
            f"cannot be read ({type(exc).__name__}: {exc})", source=source, row=None, column=None
        ) from None
    if frame.height == 0:
        raise MarketDataError("the file has no data rows", source=source, row=None, column=None)
    return frame


def _raise_if_ragged(path: Path) -> None:
    """Name the first CSV row whose field count differs from the header's, if any."""
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        for row, fields in enumerate(reader, start=1):
            if fields and len(fields) != len(header):
                raise MarketDataError(
                    f"has {len(fields)} fields, the header has {len(header)}",
                    source=str(path),
                    row=row,
                    column=None,
                )


def _first_row(mask: pl.Series) -> int | None:
    """The 1-based row of the first true value in ``mask``, or None."""
    hits = mask.fill_null(False).arg_true()
    return int(hits[0]) + 1 if hits.len() else None


def _refuse_unparsed(
    text: pl.Series, parsed: pl.Series, expected: str, *, source: str, column: str
) -> None:
    """Raise naming the first row whose non-empty ``text`` did not parse into ``parsed``."""
    bad = _first_row(text.is_not_null() & parsed.is_null())
    if bad is not None:
        raise MarketDataError(
            f"expected {expected}, got {text[bad - 1]!r}", source=source, row=bad, column=column
        )


def _as_int(series: pl.Series, source: str) -> pl.Series:
    """``series`` as Int64; text must be decimal integers, floats must be whole numbers."""
    name = series.name
    dtype = series.dtype
    if dtype == pl.String:
        stripped = series.str.strip_chars()
        parsed = stripped.cast(pl.Int64, strict=False)
        _refuse_unparsed(stripped, parsed, "an integer", source=source, column=name)
        return parsed
    if dtype.is_integer():
        return series.cast(pl.Int64)
    if isinstance(dtype, pl.Datetime):  # a parquet timestamp: nanoseconds since the epoch, UTC
        return series.dt.cast_time_unit("ns").cast(pl.Int64)
    if dtype.is_float():
        bad = _first_row(series.is_nan() | (series.floor() != series))
        if bad is not None:
            raise MarketDataError(
                f"expected an integer, got {series[bad - 1]!r}", source=source, row=bad, column=name
            )
        return series.cast(pl.Int64)
    raise MarketDataError(
        f"expected integers, the column has type {dtype}", source=source, row=1, column=name
    )


def _as_float(series: pl.Series, source: str) -> pl.Series:
    """``series`` as Float64, refusing text that is no number and NaN or infinite values."""
    name = series.name
    if series.dtype == pl.String:
        stripped = series.str.strip_chars()
        parsed = stripped.cast(pl.Float64, strict=False)
        _refuse_unparsed(stripped, parsed, "a number", source=source, column=name)
    elif series.dtype.is_numeric():
        parsed = series.cast(pl.Float64)
    else:
        raise MarketDataError(
            f"expected numbers, the column has type {series.dtype}",
            source=source,
            row=1,
            column=name,
        )
    bad = _first_row(parsed.is_nan() | parsed.is_infinite())
    if bad is not None:
        raise MarketDataError(
            f"{parsed[bad - 1]} is not a price", source=source, row=bad, column=name
        )
    return parsed


def _as_text(series: pl.Series, source: str) -> pl.Series:
    if series.dtype not in (pl.String, pl.Categorical) and not isinstance(series.dtype, pl.Enum):
        raise MarketDataError(
            f"expected text, the column has type {series.dtype}",
            source=source,
            row=1,
            column=series.name,
        )
    text = series.cast(pl.String)
    # stripped only when some value has whitespace at an end: a copy of a long column otherwise
    if text.str.contains(r"^\s|\s$").any():
        return text.str.strip_chars()
    return text


def _decimal_units(
    raw: pl.Series, values: pl.Series, instrument: Instrument, *, source: str
) -> pl.Series:
    """Prices as exact integers of the instrument's price unit, from their decimal text.

    ``raw`` is the column as read (text from CSV, numbers from parquet, where a float is taken
    as its shortest decimal form); ``values`` the same as checked floats. Nothing is rounded: a
    price with more decimals than the unit, or not a whole number of ticks, is refused.
    """
    name = raw.name
    if raw.dtype == pl.String:
        text = raw.str.strip_chars()
    else:  # a number: its shortest decimal form, positional (never 1e-08)
        text = pl.Series(
            name,
            [None if v is None else format(Decimal(repr(v)), "f") for v in raw.to_list()],
            dtype=pl.String,
        )
    parts = text.str.extract_groups(r"^\+?([0-9]+)(?:\.([0-9]*))?$")
    whole = parts.struct.field("1")
    frac = parts.struct.field("2").fill_null("").str.strip_chars_end("0")
    bad = _first_row(text.is_not_null() & whole.is_null())
    if bad is not None:
        raise MarketDataError(
            f"expected a decimal price like 12.345, got {text[bad - 1]!r}",
            source=source,
            row=bad,
            column=name,
        )
    decimals = instrument.decimals
    # digits past the price unit: zero, or float noise of a writer that printed binary doubles
    # (0.08388999999999999 for 0.08389); under a millionth of a unit it is that noise and the
    # decimal meant is taken; anything more is a price off the unit, refused
    tail = frac.str.slice(decimals)
    rest = tail.str.slice(0, 12).str.pad_end(12, "0").cast(pl.Int64)
    noise = 1_000_000  # 1e-6 of a unit, in units of 1e-12
    up = (tail.str.len_chars() > 0) & (rest >= 10**12 - noise)
    bad = _first_row((tail.str.len_chars() > 0) & (rest > noise) & ~up)
    if bad is not None:
        raise MarketDataError(
            f"price {text[bad - 1]} has more decimals than {instrument.symbol}'s tick "
            f"{instrument.tick_size} allows (never rounded: fix the data or the instruments file)",
            source=source,
            row=bad,
            column=name,
        )
    head = frac.str.slice(0, decimals).str.pad_end(decimals, "0")
    units = whole.cast(pl.Int64) * instrument.price_scale + head.cast(pl.Int64) + up.cast(pl.Int64)
    _refuse_off_tick(units, instrument, source=source, column=name, shown=text)
    del values
    return units.alias(name)


def _refuse_off_tick(
    units: pl.Series,
    instrument: Instrument,
    *,
    source: str,
    column: str,
    shown: pl.Series | None = None,
    mask: pl.Series | None = None,
) -> None:
    """Raise naming the first price (of ``mask``'s rows) that is not a whole number of ticks."""
    tick = instrument.tick_units
    if tick == 1:
        return
    off = (units % tick) != 0
    if mask is not None:
        off = off & mask
    bad = _first_row(off)
    if bad is not None:
        value = shown[bad - 1] if shown is not None else f"{units[bad - 1]} units"
        raise MarketDataError(
            f"price {value} is not a multiple of {instrument.symbol}'s tick "
            f"{instrument.tick_size} (never rounded: fix the data or the instruments file)",
            source=source,
            row=bad,
            column=column,
        )


def _instrument(
    symbol: str, instruments: Instruments | None, *, source: str, row: int | None
) -> Instrument:
    table = instruments if instruments is not None else default_instruments()
    found = table.of(symbol)
    if found is None:
        raise MarketDataError(
            f"unknown instrument {symbol!r}: not in {table.source}",
            source=source,
            row=row,
            column="symbol",
        )
    return found


def check_ticks(
    events: pl.DataFrame, instruments: Instruments | None = None, *, source: str = "<frame>"
) -> pl.DataFrame:
    """``events`` if every symbol is a known instrument (when the table is strict) and every
    price is a whole number of its ticks; raises naming the first bad row and column."""
    symbol = events.get_column("symbol")
    for name in symbol.unique(maintain_order=True).to_list():
        mine = symbol == name
        instrument = _instrument(name, instruments, source=source, row=_first_row(mine))
        for column in _PRICE_FIELDS:
            _refuse_off_tick(
                events.get_column(column), instrument, source=source, column=column, mask=mine
            )
    return events


# --------------------------------------------------------------------------------------------
# Event frames


def normalise_events(frame: pl.DataFrame, *, source: str = "<frame>") -> pl.DataFrame:
    """``frame`` with every :data:`EVENT_SCHEMA` column (absent ones null) in schema order.

    Typed strictly (see :func:`_as_int`); unknown columns are refused. Does not validate
    values: :func:`validate_events` does.
    """
    unknown = [c for c in frame.columns if c not in EVENT_SCHEMA]
    if unknown:
        raise MarketDataError(
            f"not an event field (known: {', '.join(EVENT_SCHEMA)})",
            source=source,
            row=None,
            column=unknown[0],
        )
    for required in ("ts", "symbol", "kind"):
        if required not in frame.columns:
            raise MarketDataError(
                "required column is missing", source=source, row=None, column=required
            )
    columns: list[pl.Series] = []
    for name, dtype in EVENT_SCHEMA.items():
        if name not in frame.columns:
            # all null, made without a Python list (its values buffer is never written: the
            # pages are not touched, so an absent column costs no memory to speak of)
            columns.append(pl.Series(name, dtype=dtype).extend_constant(None, frame.height))
        elif dtype == pl.String:
            columns.append(_as_text(frame.get_column(name), source))
        else:
            columns.append(_as_int(frame.get_column(name), source))
    return pl.DataFrame(columns)


def validate_events(events: pl.DataFrame, *, source: str = "<frame>") -> pl.DataFrame:
    """``events`` (already normalised) if every row is well-formed; raises otherwise.

    Checks: no null ``ts``/``symbol``/``kind``; ``kind`` in KINDS; the fields each kind needs are
    present; prices positive; sizes non-negative; ``ts`` non-decreasing; no two events with the
    same ``(ts, symbol, kind)``.
    """
    if _all_valid(events):
        return events
    return _first_invalid(events, source)


def _all_valid(events: pl.DataFrame) -> bool:
    """Every check of :func:`validate_events` in one parallel pass, as one yes or no (the
    common case; only a frame that fails is walked check by check to name the first row)."""
    kind, ts = pl.col("kind"), pl.col("ts")
    bad = [pl.col(n).is_null().any() for n in ("ts", "symbol", "kind")]
    bad.append((~kind.is_in(list(KINDS))).any())
    bad += [
        ((kind == k) & pl.col(n).is_null()).any() for k, ns in _NEEDED_BY_KIND.items() for n in ns
    ]
    bad += [(pl.col(n) <= 0).any() for n in _PRICE_FIELDS]
    bad += [(pl.col(n) < 0).any() for n in _SIZE_FIELDS]
    bad.append((ts.diff() < 0).any())
    # two events can share (ts, symbol, kind) only where ts repeats: look there alone
    tied = (ts == ts.shift(1)) | (ts == ts.shift(-1))
    flags = events.select(*(b.alias(f"c{i}") for i, b in enumerate(bad)), tied.any().alias("t"))
    row = flags.row(0)
    if any(bool(v) for v in row[:-1]):
        return False
    if row[-1]:
        key = pl.struct("ts", "symbol", "kind").is_first_distinct().all()
        return bool(events.filter(tied).select(key).item())
    return True


def _first_invalid(events: pl.DataFrame, source: str) -> pl.DataFrame:
    """The checks of :func:`validate_events` one by one: raises naming the first bad row."""
    for name in ("ts", "symbol", "kind"):
        bad = _first_row(events.get_column(name).is_null())
        if bad is not None:
            raise MarketDataError("missing value", source=source, row=bad, column=name)
    kind = events.get_column("kind")
    bad = _first_row(~kind.is_in(list(KINDS)))
    if bad is not None:
        raise MarketDataError(
            f"unknown kind {kind[bad - 1]!r} (known: {', '.join(KINDS)})",
            source=source,
            row=bad,
            column="kind",
        )
    for k, needed in _NEEDED_BY_KIND.items():
        is_kind = kind == k
        for name in needed:
            bad = _first_row(is_kind & events.get_column(name).is_null())
            if bad is not None:
                raise MarketDataError(
                    f"a {k} event needs {name}", source=source, row=bad, column=name
                )
    for name in _PRICE_FIELDS:
        col = events.get_column(name)
        bad = _first_row(col <= 0)
        if bad is not None:
            raise MarketDataError(
                f"price must be positive, got {col[bad - 1]} ticks",
                source=source,
                row=bad,
                column=name,
            )
    for name in _SIZE_FIELDS:
        col = events.get_column(name)
        bad = _first_row(col < 0)
        if bad is not None:
            raise MarketDataError(
                f"size must not be negative, got {col[bad - 1]}",
                source=source,
                row=bad,
                column=name,
            )
    ts = events.get_column("ts")
    bad = _first_row(ts.diff() < 0)
    if bad is not None:
        raise MarketDataError(
            f"timestamps are not sorted: {ts[bad - 1]} comes after {ts[bad - 2]} (row {bad - 1})",
            source=source,
            row=bad,
            column="ts",
        )
    key = events.select(pl.struct("ts", "symbol", "kind").is_first_distinct()).to_series()
    bad = _first_row(~key)
    if bad is not None:
        raise MarketDataError(
            f"duplicate timestamp {ts[bad - 1]} for {events['symbol'][bad - 1]!r} "
            f"{events['kind'][bad - 1]}",
            source=source,
            row=bad,
            column="ts",
        )
    return events


def load_events(path: str | Path, *, instruments: Instruments | None = None) -> pl.DataFrame:
    """An event file (CSV or parquet) as a validated frame with every schema column; prices are
    integers of each instrument's unit and must be whole ticks (:func:`check_ticks`)."""
    path = Path(path)
    frame = _read_raw(path)
    events = validate_events(normalise_events(frame, source=str(path)), source=str(path))
    return check_ticks(events, instruments, source=str(path))


def write_events(events: pl.DataFrame, path: str | Path) -> Path:
    """Write a validated event frame to parquet (zstd); returns the path."""
    path = Path(path)
    validate_events(normalise_events(events))
    events.write_parquet(path, compression="zstd", statistics=False)
    return path


# --------------------------------------------------------------------------------------------
# Daily OHLCV


def _ohlcv_columns(frame: pl.DataFrame, source: str) -> dict[str, str]:
    by_lower: dict[str, str] = {}
    for c in frame.columns:
        by_lower.setdefault(c.strip().lower(), c)
    missing = [c for c in _OHLCV_COLUMNS if c not in by_lower]
    if missing:
        raise MarketDataError(
            f"required column is missing (have {', '.join(frame.columns)})",
            source=source,
            row=None,
            column=missing[0].capitalize(),
        )
    return {c: by_lower[c] for c in _OHLCV_COLUMNS}


def _dates_ns(series: pl.Series, source: str) -> pl.Series:
    if series.dtype == pl.Date:
        days = series.cast(pl.Int64)
    elif isinstance(series.dtype, pl.Datetime):
        days = series.dt.date().cast(pl.Int64)
    else:
        text = _as_text(series, source)
        parsed = text.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
        _refuse_unparsed(text, parsed, "a date YYYY-MM-DD", source=source, column=series.name)
        days = parsed.cast(pl.Int64)
    return (days * _DAY_NS).alias("ts")


def ohlcv_to_events(
    frame: pl.DataFrame,
    *,
    symbol: str,
    source: str = "<frame>",
    instruments: Instruments | None = None,
) -> pl.DataFrame:
    """Daily OHLCV rows as ``bar`` events, validated; prices exact in the instrument's unit
    (:mod:`zcbench.marketdata._instruments`; ``instruments`` defaults to the committed table).

    A bar's ``ts`` is its date at 00:00 UTC; ``price`` repeats ``close`` and ``size`` repeats
    ``volume``, so strategies that read trade fields also work on bars. Dates must be strictly
    increasing; ``Low <= Open, Close <= High`` must hold.
    """
    if not symbol:
        raise MarketDataError(
            "a symbol is needed for OHLCV data", source=source, row=None, column=None
        )
    instrument = _instrument(symbol, instruments, source=source, row=None)
    names = _ohlcv_columns(frame, source)
    for c in _OHLCV_COLUMNS:
        bad = _first_row(frame.get_column(names[c]).is_null())
        if bad is not None:
            raise MarketDataError("missing value", source=source, row=bad, column=names[c])
    ts = _dates_ns(frame.get_column(names["date"]), source)
    prices: dict[str, pl.Series] = {}
    for c in ("open", "high", "low", "close"):
        values = _as_float(frame.get_column(names[c]), source)
        bad = _first_row(values <= 0)
        if bad is not None:
            raise MarketDataError(
                f"price must be positive, got {values[bad - 1]}",
                source=source,
                row=bad,
                column=names[c],
            )
        prices[c] = _decimal_units(frame.get_column(names[c]), values, instrument, source=source)
        prices[c] = prices[c].alias(c)
    volume = _as_int(frame.get_column(names["volume"]), source).alias("volume")
    bad = _first_row(volume < 0)
    if bad is not None:
        raise MarketDataError(
            f"volume must not be negative, got {volume[bad - 1]}",
            source=source,
            row=bad,
            column=names["volume"],
        )
    bad = _first_row(ts.diff() <= 0)
    if bad is not None:
        raise MarketDataError(
            "dates must be strictly increasing (unsorted or duplicate date)",
            source=source,
            row=bad,
            column=names["date"],
        )
    o, h, low, cl = prices["open"], prices["high"], prices["low"], prices["close"]
    for name, broken in (
        ("high", (h < o) | (h < cl) | (h < low)),
        ("low", (low > o) | (low > cl)),
    ):
        bad = _first_row(broken)
        if bad is not None:
            raise MarketDataError(
                "bar is inconsistent: need Low <= Open, Close <= High",
                source=source,
                row=bad,
                column=names[name],
            )
    events = pl.DataFrame(
        {
            "ts": ts,
            "symbol": pl.Series([symbol] * frame.height, dtype=pl.String),
            "kind": pl.Series(["bar"] * frame.height, dtype=pl.String),
            "price": cl,
            "size": volume,
            "open": o,
            "high": h,
            "low": low,
            "close": cl,
            "volume": volume,
        }
    )
    return validate_events(normalise_events(events, source=source), source=source)


def load_ohlcv(
    path: str | Path, *, symbol: str | None = None, instruments: Instruments | None = None
) -> pl.DataFrame:
    """A daily OHLCV file (CSV or parquet) as validated ``bar`` events.

    ``symbol`` defaults to the file name up to its first ``_`` or ``.``, upper-cased
    (``msft_daily.csv`` is ``MSFT``).
    """
    path = Path(path)
    frame = _read_raw(path)
    name = symbol if symbol is not None else path.name.split(".")[0].split("_")[0].upper()
    return ohlcv_to_events(frame, symbol=name, source=str(path), instruments=instruments)


def load_market_data(
    path: str | Path, *, symbol: str | None = None, instruments: Instruments | None = None
) -> pl.DataFrame:
    """An event file or a daily OHLCV file, recognised by its columns (``ts`` or ``Date``)."""
    path = Path(path)
    frame = _read_raw(path)
    lower = {c.strip().lower() for c in frame.columns}
    if "ts" in lower:
        events = validate_events(normalise_events(frame, source=str(path)), source=str(path))
        return check_ticks(events, instruments, source=str(path))
    if "date" in lower:
        name = symbol if symbol is not None else path.name.split(".")[0].split("_")[0].upper()
        return ohlcv_to_events(frame, symbol=name, source=str(path), instruments=instruments)
    raise MarketDataError(
        "neither an event file (needs a ts column) nor daily OHLCV (needs a Date column)",
        source=str(path),
        row=None,
        column=None,
    )
