"""The analysts' view: any log or exported slice as a polars DataFrame.

:func:`to_polars` gives one row per record (index, kind, seq, times, body bytes, leaf hash) plus
the columns an injectable decoder returns for each record; the default decoder summarises IN and
OUT bodies through ``zcbench.strategy`` (event and signal counts, symbols). :func:`events_frame`
and :func:`signals_frame` decode the bodies themselves: every logged event, or every logged
signal, tagged with the log index and batch seq it came from.

This view reads; it does not verify. Verify first (``check_log``) when the answer matters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from zcbench.auditlog._fs import OsFileSystem
from zcbench.auditlog._walk import LogWalk
from zcbench.auditlog.export import read_slice
from zcbench.auditlog.merkle import leaf_hash
from zcbench.auditlog.records import Record, decode_record
from zcbench.auditlog.verify import resolve_log_path

__all__ = ["Decoder", "events_frame", "iter_records", "signals_frame", "strategy_summary",
           "to_polars"]

Decoder = Callable[[Record], Mapping[str, Any] | None]
"""Extra columns for one record (None or missing keys become nulls)."""


def iter_records(path: Path) -> Iterator[tuple[Record, bytes]]:
    """Every whole record of a run folder, log folder or slice, with its leaf hash, in order.

    Stops quietly at damage (use ``check_log`` to find out why).
    """
    kind, target, _ = resolve_log_path(path)
    if kind == "slice":
        boot, _, _, entries, _ = read_slice(target.read_bytes())
        for data in [boot, *(d for d, _ in entries)]:
            yield decode_record(data), leaf_hash(data)
        return
    for item in LogWalk(target, OsFileSystem()).records():
        yield item.record, item.leaf_hash


def strategy_summary(record: Record) -> Mapping[str, Any] | None:
    """Default decoder: event count and symbols of IN batches, signal count and symbols of OUT."""
    from zcbench.strategy import decode_batch, decode_signals

    if record.kind == "in":
        events = decode_batch(record.body).events
        symbols = sorted(events.get_column("symbol").unique().to_list())
        return {"events": events.height, "symbols": symbols}
    if record.kind == "out":
        signals = decode_signals(record.body)
        return {"signals": len(signals), "symbols": sorted({s.symbol for s in signals})}
    return None


def to_polars(path: Path, *, decoder: Decoder | None = strategy_summary) -> pl.DataFrame:
    """One row per record; ``decoder=None`` keeps bodies as raw bytes only."""
    rows: list[dict[str, Any]] = []
    extra_keys: list[str] = []
    for record, leaf in iter_records(path):
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


def events_frame(path: Path) -> pl.DataFrame:
    """Every event of every IN batch, with ``log_index`` and ``seq`` columns in front."""
    from zcbench.strategy import decode_batch

    frames = []
    for record, _ in iter_records(path):
        if record.kind == "in":
            events = decode_batch(record.body).events
            frames.append(events.select(
                pl.lit(record.index, pl.UInt64).alias("log_index"),
                pl.lit(record.seq, pl.Int64).alias("seq"),
                pl.all(),
            ))
    return pl.concat(frames, how="diagonal") if frames else pl.DataFrame()


def signals_frame(path: Path) -> pl.DataFrame:
    """Every signal of every OUT record, with ``log_index`` and ``seq``."""
    from zcbench.strategy import decode_signals

    rows = []
    for record, _ in iter_records(path):
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
