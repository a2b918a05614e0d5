"""Choosing records: by kind, symbol, time and index, the same in ``log show``, ``log export``,
the DataFrame view and the log inspector.

A :class:`RecordFilter` is frozen and matches one :class:`~zcbench.auditlog.records.Record` at a
time, so a reader can stream a log through it. Time is the record's event time when it has one
(IN and OUT records: the newest event of the batch), else its record time; the boot record has
no time to select by. Symbols come from the bodies through ``zcbench.strategy`` (the events of
an IN batch, the signals of an OUT record). :func:`parse_time_ns` reads the times people type:
ISO 8601 (``2026-01-02T15:04:05Z``, a zone or UTC) or integer nanoseconds since the epoch.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from zcbench.auditlog.records import KINDS, Record
from zcbench.errors import UsageError

__all__ = ["RecordFilter", "SymbolsOf", "format_time_ns", "parse_time_ns", "strategy_symbols"]

_FRACTION: Final = re.compile(r"(?<=\d\d:\d\d:\d\d)\.(\d+)")

SymbolsOf = Callable[[Record], "set[str]"]
"""Which symbols a record mentions."""


def strategy_symbols(record: Record) -> set[str]:
    """Symbols of an IN batch's events, of a feedback IN record's outcomes and positions, of a
    venue state at start, or of an OUT record's signals, via ``zcbench.strategy``."""
    from zcbench.strategy import decode_batch, decode_context, decode_signals, is_context, is_start

    if record.kind == "in" and is_start(record.body):
        from zcbench.strategy import decode_start

        state = decode_start(record.body)
        return {s for s, _ in state.positions} | {e.symbol for e in state.executions}
    if record.kind == "in" and is_context(record.body):
        context = decode_context(record.body, seq=record.batch_seq)
        return {o.symbol for o in context.outcomes} | {s for s, _ in context.positions}
    if record.kind == "in":
        events = decode_batch(record.body, seq=record.batch_seq).events
        return set(events.get_column("symbol").unique().to_list())
    if record.kind == "out":
        return {signal.symbol for signal in decode_signals(record.body)}
    return set()


def parse_time_ns(text: str, what: str = "time") -> int:
    """``text`` as nanoseconds since the epoch: ISO 8601 (no zone means UTC) or an integer."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    nanos = 0
    fraction = _FRACTION.search(text)
    if fraction is not None:  # datetime keeps microseconds only: take the digits ourselves
        digits = fraction.group(1)
        nanos = int(digits[:9].ljust(9, "0"))
        text = text[: fraction.start()] + text[fraction.end():]
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{what} {text!r} is not an ISO 8601 time such as "
                         "2026-01-02T15:04:05Z (or nanoseconds since the epoch)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + nanos


def format_time_ns(value: int | None) -> str:
    """``value`` (ns since the epoch) as ISO 8601 UTC with nanoseconds, e.g.
    ``2026-01-02T15:04:05.123456789Z``; an empty string for None."""
    if value is None:
        return ""
    seconds, nanos = divmod(value, 1_000_000_000)
    when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


@dataclass(frozen=True)
class RecordFilter:
    """Which records to keep; every field left None keeps everything.

    ``kinds``: record kinds; ``symbol``: records whose body names it; ``since_ns`` (inclusive)
    and ``until_ns`` (exclusive): event time, else record time; ``index_range``: [start, stop).
    """

    kinds: frozenset[str] | None = None
    symbol: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    index_range: tuple[int, int] | None = None
    symbols_of: SymbolsOf = field(default=strategy_symbols, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kinds is not None:
            unknown = sorted(set(self.kinds) - set(KINDS))
            if unknown:
                raise UsageError(f"unknown record kind {unknown[0]}: use one of "
                                 f"{', '.join(KINDS)}")
        if self.index_range is not None:
            start, stop = self.index_range
            if not 0 <= start < stop:
                raise UsageError(f"index range [{start}, {stop}) is empty or negative")
        if (self.since_ns is not None and self.until_ns is not None
                and not self.since_ns < self.until_ns):
            raise UsageError("the time range is empty: its start must come before its end")

    @property
    def is_everything(self) -> bool:
        """Whether this filter keeps every record."""
        return (self.kinds is None and self.symbol is None and self.since_ns is None
                and self.until_ns is None and self.index_range is None)

    @property
    def stop_index(self) -> int | None:
        """No record at or past this index can match (None: no such bound)."""
        return self.index_range[1] if self.index_range is not None else None

    def matches(self, record: Record) -> bool:
        """Whether ``record`` is kept (cheap tests first; the body is decoded last)."""
        if self.index_range is not None and not (
            self.index_range[0] <= record.index < self.index_range[1]
        ):
            return False
        if self.kinds is not None and record.kind not in self.kinds:
            return False
        if self.since_ns is not None or self.until_ns is not None:
            if record.kind == "boot":
                return False
            t = record.event_time_ns if record.event_time_ns is not None else record.time_ns
            if self.since_ns is not None and t < self.since_ns:
                return False
            if self.until_ns is not None and t >= self.until_ns:
                return False
        return self.symbol is None or self.symbol in self.symbols_of(record)

    def describe(self) -> str:
        """The filter in words (a slice's ``selection``, a listing's header)."""
        parts = []
        if self.index_range is not None:
            parts.append(f"index [{self.index_range[0]}, {self.index_range[1]})")
        if self.kinds is not None:
            parts.append("kind " + ",".join(sorted(self.kinds)))
        if self.symbol is not None:
            parts.append(f"symbol {self.symbol}")
        if self.since_ns is not None or self.until_ns is not None:
            parts.append(f"time [{format_time_ns(self.since_ns) or '-'}, "
                         f"{format_time_ns(self.until_ns) or '-'})")
        return "; ".join(parts) or "every record"
