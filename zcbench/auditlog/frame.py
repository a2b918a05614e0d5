"""The analysts' view: any log or exported slice as a polars DataFrame.

:func:`to_polars` gives one row per record (index, kind, seq, times, body bytes, leaf hash) plus
the columns an injectable decoder returns for each record; the default decoder summarises IN and
OUT bodies through ``zcbench.strategy`` (event, outcome and signal counts, symbols; a feedback IN
record has ``feedback`` true). :func:`events_frame`, :func:`outcomes_frame`,
:func:`positions_frame` and :func:`signals_frame` decode the bodies themselves: every logged
event, every outcome and position told to the strategy, or every logged signal, tagged with the
log index and batch seq it came from.

Every function takes a ``str`` or a :class:`~pathlib.Path` naming a run folder, a log folder or
an exported slice, and refuses anything else (a build folder, a document) with a
:class:`~zcbench.errors.UsageError` instead of returning an empty frame. ``record_filter``
(:class:`~zcbench.auditlog.select.RecordFilter`) keeps only the records it matches, while the
log streams past.

This view reads; it does not verify. Verify first (``check_log``) when the answer matters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from zcbench.auditlog._fs import OsFileSystem
from zcbench.auditlog._walk import LogWalk
from zcbench.auditlog.location import locate_log
from zcbench.auditlog.merkle import leaf_hash
from zcbench.auditlog.records import Record, decode_record
from zcbench.auditlog.select import RecordFilter
from zcbench.auditlog.slice import LogSlice

__all__ = ["Decoder", "events_frame", "filter_frame", "iter_records", "outcomes_frame",
           "positions_frame", "signals_frame", "strategy_summary", "to_polars"]

Decoder = Callable[[Record], Mapping[str, Any] | None]
"""Extra columns for one record (None or missing keys become nulls)."""


def iter_records(
    path: str | Path, record_filter: RecordFilter | None = None
) -> Iterator[tuple[Record, bytes]]:
    """Every whole record of a run folder, log folder or slice, with its leaf hash, in order,
    streamed (one segment in memory at a time); only those ``record_filter`` matches.

    Stops quietly at damage (use ``check_log`` to find out why).
    """
    where = locate_log(path)
    keep = record_filter.matches if record_filter is not None else None
    stop = record_filter.stop_index if record_filter is not None else None
    if where.kind == "slice":
        sliced = LogSlice.read(where.target)
        for data in [sliced.boot.record, *(e.record for e in sliced.entries)]:
            record = decode_record(data)
            if keep is None or keep(record):
                yield record, leaf_hash(data)
        return
    for item in LogWalk(where.target, OsFileSystem()).records():
        if stop is not None and item.index >= stop:
            return
        if keep is None or keep(item.record):
            yield item.record, item.leaf_hash


def strategy_summary(record: Record) -> Mapping[str, Any] | None:
    """Default decoder: event count and symbols of IN batches, outcome count and symbols of
    feedback IN records (``feedback`` true), signal count and symbols of OUT (None for a venue
    state at start)."""
    from zcbench.strategy import decode_batch, decode_context, decode_signals, is_context, is_start

    if record.kind == "in" and is_start(record.body):
        return None
    if record.kind == "in" and is_context(record.body):
        context = decode_context(record.body, seq=record.batch_seq)
        told = {o.symbol for o in context.outcomes} | {s for s, _ in context.positions}
        return {"feedback": True, "outcomes": len(context.outcomes), "symbols": sorted(told)}
    if record.kind == "in":
        events = decode_batch(record.body, seq=record.batch_seq).events
        symbols = sorted(events.get_column("symbol").unique().to_list())
        return {"events": events.height, "symbols": symbols}
    if record.kind == "out":
        signals = decode_signals(record.body)
        return {"signals": len(signals), "symbols": sorted({s.symbol for s in signals})}
    return None


def to_polars(
    path: str | Path,
    *,
    decoder: Decoder | None = strategy_summary,
    record_filter: RecordFilter | None = None,
) -> pl.DataFrame:
    """One row per record; ``decoder=None`` keeps bodies as raw bytes only."""
    rows: list[dict[str, Any]] = []
    extra_keys: list[str] = []
    for record, leaf in iter_records(path, record_filter):
        row: dict[str, Any] = {
            "index": record.index,
            "kind": record.kind,
            "seq": record.seq,
            "time_ns": record.time_ns,
            "event_time_ns": record.event_time_ns,
            "body": record.body,
            "leaf_hash": leaf.hex(),
        }
        extra = decoder(record) if decoder is not None else None
        for key, value in (extra or {}).items():
            if key in row:
                raise ValueError(f"decoder column {key!r} clashes with a record column")
            if key not in extra_keys:
                extra_keys.append(key)
            row[key] = value
        rows.append(row)
    schema: dict[str, Any] = {
        "index": pl.UInt64,
        "kind": pl.String,
        "seq": pl.Int64,
        "time_ns": pl.Int64,
        "event_time_ns": pl.Int64,
        "body": pl.Binary,
        "leaf_hash": pl.String,
    }
    frame = pl.DataFrame(
        [{**{k: None for k in extra_keys}, **row} for row in rows] or None,
        schema_overrides=schema,
        infer_schema_length=None,
    )
    if frame.is_empty():
        return pl.DataFrame(schema=schema)
    return frame.select([*schema, *extra_keys])


def events_frame(path: str | Path) -> pl.DataFrame:
    """Every event of every IN batch, with ``log_index`` and ``seq`` columns in front (feedback
    IN records and a venue state at start hold no events: :func:`outcomes_frame`,
    :func:`positions_frame`)."""
    from zcbench.strategy import decode_batch, is_context, is_start

    frames = []
    for record, _ in iter_records(path, RecordFilter(kinds=frozenset({"in"}))):
        if record.kind == "in" and not (is_start(record.body) or is_context(record.body)):
            events = decode_batch(record.body, seq=record.batch_seq).events
            frames.append(events.select(
                pl.lit(record.index, pl.UInt64).alias("log_index"),
                pl.lit(record.seq, pl.Int64).alias("seq"),
                pl.all(),
            ))
    return pl.concat(frames, how="diagonal") if frames else pl.DataFrame()


_OUTCOMES_SCHEMA: dict[str, Any] = {
    "log_index": pl.UInt64, "seq": pl.Int64, "signal_batch": pl.Int64, "signal": pl.Int64,
    "symbol": pl.String, "status": pl.String, "limit": pl.String, "quantity": pl.Int64,
    "price": pl.Int64, "reason": pl.String,
}
_POSITIONS_SCHEMA: dict[str, Any] = {
    "log_index": pl.UInt64, "seq": pl.Int64, "symbol": pl.String, "position": pl.Int64,
}


def _contexts(path: str | Path) -> Iterator[tuple[Record, Any]]:
    from zcbench.strategy import decode_context, is_context

    for record, _ in iter_records(path, RecordFilter(kinds=frozenset({"in"}))):
        if record.kind == "in" and is_context(record.body):
            yield record, decode_context(record.body, seq=record.batch_seq)


def outcomes_frame(path: str | Path) -> pl.DataFrame:
    """Every outcome of every feedback IN record: ``log_index`` and ``seq`` of the feedback
    record, ``signal_batch`` and ``signal`` of the signal it concerns (the seq of the batch it
    answered and its place among that batch's signals), then the outcome (``status``,
    ``limit`` of a refusal, ``quantity``, ``price`` of a fill, ``reason``)."""
    rows = [
        {"log_index": record.index, "seq": record.seq, "signal_batch": o.batch,
         "signal": o.signal, "symbol": o.symbol, "status": o.status, "limit": o.limit,
         "quantity": o.quantity, "price": o.price, "reason": o.reason}
        for record, context in _contexts(path)
        for o in context.outcomes
    ]
    return pl.DataFrame(rows, schema=_OUTCOMES_SCHEMA)


def positions_frame(path: str | Path) -> pl.DataFrame:
    """The positions every feedback IN record reports (non-zero ones, by symbol), with the
    record's ``log_index`` and the ``seq`` of the batch it was handed with."""
    rows = [
        {"log_index": record.index, "seq": record.seq, "symbol": symbol, "position": quantity}
        for record, context in _contexts(path)
        for symbol, quantity in context.positions
    ]
    return pl.DataFrame(rows, schema=_POSITIONS_SCHEMA)


def signals_frame(path: str | Path) -> pl.DataFrame:
    """Every signal of every OUT record, with ``log_index`` and ``seq``."""
    from zcbench.strategy import decode_signals

    rows = []
    for record, _ in iter_records(path, RecordFilter(kinds=frozenset({"out"}))):
        if record.kind == "out":
            for signal in decode_signals(record.body):
                rows.append({
                    "log_index": record.index,
                    "seq": record.seq,
                    "symbol": signal.symbol,
                    "side": signal.side,
                    "quantity": signal.quantity,
                    "limit_price": signal.limit_price,
                })
    schema = {"log_index": pl.UInt64, "seq": pl.Int64, "symbol": pl.String, "side": pl.String,
              "quantity": pl.Int64, "limit_price": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def filter_frame(frame: pl.DataFrame, record_filter: RecordFilter) -> pl.DataFrame:
    """The rows of a :func:`to_polars` frame that ``record_filter`` keeps, by the same rules as
    :meth:`RecordFilter.matches` (time: ``event_time_ns``, else ``time_ns``; boot records have no
    time; the symbol from the ``symbols`` column). A filter the frame has no column for raises
    :class:`~zcbench.errors.UsageError` rather than silently keeping everything."""
    from zcbench.errors import UsageError

    f = record_filter
    out = frame
    if f.index_range is not None:
        out = out.filter(pl.col("index").is_between(f.index_range[0], f.index_range[1] - 1))
    if f.kinds is not None:
        if "kind" not in out.columns:
            raise UsageError("these records have no 'kind' column to filter on")
        out = out.filter(pl.col("kind").is_in(sorted(f.kinds)))
    if f.symbol is not None:
        if "symbols" not in out.columns:
            raise UsageError("these records have no symbol column to filter on")
        out = out.filter(pl.col("symbols").list.contains(f.symbol).fill_null(False))
    if f.since_ns is not None or f.until_ns is not None:
        present = [c for c in ("event_time_ns", "time_ns") if c in out.columns]
        if not present:
            raise UsageError("these records have no time column to filter on")
        when = pl.coalesce([pl.col(c) for c in present])
        if "kind" in out.columns:
            out = out.filter(pl.col("kind") != "boot")
        if f.since_ns is not None:
            out = out.filter(when >= f.since_ns)
        if f.until_ns is not None:
            out = out.filter(when < f.until_ns)
    return out
