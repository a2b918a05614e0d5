"""A listing of a log's records for people: what ``zcbench log show`` prints.

:func:`list_records` streams a run folder, log folder or slice through a
:class:`~zcbench.auditlog.select.RecordFilter` and stops at ``limit`` matches, so the first page
of a huge log reads one segment, not the log. Each :class:`ListedRecord` carries ISO 8601 UTC
times and a decoded one-line summary of its body (the events of an IN batch, the outcomes and
positions of a feedback IN record, the signals of an OUT record). The total is counted from
segment headers and the last segment's frames, without reading payloads. Nothing here is verified.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zcbench.auditlog._fs import OsFileSystem
from zcbench.auditlog._walk import LogWalk
from zcbench.auditlog.frame import iter_records
from zcbench.auditlog.location import locate_log
from zcbench.auditlog.records import Record
from zcbench.auditlog.select import RecordFilter, format_time_ns
from zcbench.auditlog.slice import LogSlice
from zcbench.errors import ZcbenchError

__all__ = ["ListedRecord", "Listing", "describe_body", "describe_feedback", "describe_snapshot",
           "list_records"]

_MAX_OUTCOMES_SHOWN = 8


@dataclass(frozen=True, slots=True)
class ListedRecord:
    """One record as listed: ISO times, body size and a decoded summary."""

    index: int
    kind: str
    seq: int | None
    time: str
    event_time: str
    body_bytes: int
    summary: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind, "seq": self.seq, "time": self.time,
                "event_time": self.event_time or None, "body_bytes": self.body_bytes,
                "summary": self.summary}


@dataclass(frozen=True, slots=True)
class Listing:
    """``rows`` (at most ``limit``) of the ``total`` records, matching ``selection``.

    ``matched`` is how many records match in all, known only when the whole log was read
    (``complete``); a listing that stopped at its limit does not know it.
    """

    rows: tuple[ListedRecord, ...]
    total: int
    selection: str
    complete: bool
    matched: int | None

    def header(self) -> str:
        """``showing N of M records`` with what was selected."""
        if self.selection == "every record":
            return f"showing {len(self.rows)} of {self.total} records (unverified listing)"
        if self.matched is not None:
            return (f"showing {len(self.rows)} of {self.matched} matching ({self.selection}) "
                    f"of {self.total} records (unverified listing)")
        return (f"showing the first {len(self.rows)} matching ({self.selection}) of "
                f"{self.total} records (unverified listing)")

    def to_json(self) -> dict[str, Any]:
        return {"records": self.total, "shown": len(self.rows), "selection": self.selection,
                "matched": self.matched, "rows": [r.to_json() for r in self.rows]}


def _price(ticks: int | None) -> str:
    return "" if ticks is None else f" limit {ticks} ticks"


def _structured_note(body: bytes) -> str | None:
    """A note the host wrote as a canonical CBOR map naming its kind (drops, control and clock
    records), as ``kind: key=value, ...``; None for any other body."""
    from zcbench import _cbor

    try:
        doc = _cbor.decode(body, canonical=True, max_depth=3, max_bytes=1 << 16)
    except _cbor.CborError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("note"), str):
        return None

    def show(value: object) -> str:
        if isinstance(value, dict):
            return "{" + " ".join(f"{k}={show(v)}" for k, v in value.items()) + "}"
        return str(value)

    items = sorted(((k, v) for k, v in doc.items() if k != "note"),
                   key=lambda kv: isinstance(kv[1], dict))  # the scalars first, maps last
    return f"{doc['note']}: " + ", ".join(f"{k}={show(v)}" for k, v in items)


def _outcome(o: Any) -> str:
    what = f"{o.status} {o.quantity} {o.symbol} (signal {o.signal} of batch {o.batch})"
    if o.status == "refused":
        return f"{what} by {o.limit}"
    return what if o.price is None else f"{what} at {o.price} ticks"


def describe_snapshot(body: bytes) -> str:
    """One line for a strategy snapshot record: taken (before which batch), restored (from
    which log and record) or caught up (on how many batches of which log), with the state's
    size and SHA-256."""
    from zcbench.strategy import decode_snapshot_note

    note = decode_snapshot_note(body)
    action = note.action if note.batches is None else f"caught up on {note.batches} batches"
    what = (f"strategy snapshot {action} before batch {note.seq}: {note.size} bytes, "
            f"sha256 {note.sha256.hex()[:16]}..")
    if note.source is not None and note.batches is not None:
        what += (f", the records of {note.source.origin} after record {note.source.index} "
                 f"to its checkpoint of size {note.source.size}")
    elif note.source is not None:
        what += f", from {note.source.origin} record {note.source.index}"
    return what


def describe_feedback(data: bytes, *, seq: int) -> str:
    """One line for ``data``, the body of the feedback IN record of batch ``seq``: its outcomes
    and positions (the limits are in every record; ``log show --raw`` and ``to_polars`` keep the
    bytes). The rule of :func:`~zcbench.strategy.decode_context` and
    :func:`~zcbench.strategy.decode_batch`: ``seq`` is the seq of the record (or frame) that
    carries ``data`` (:attr:`Record.batch_seq <zcbench.auditlog.records.Record.batch_seq>`), a
    version 3 body carries none and a version 2 body's own is held to it. Raises
    :class:`~zcbench.errors.DataError` as the decoder does (:func:`describe_body` turns it into
    an ``undecodable body`` line)."""
    from zcbench.strategy import decode_context

    context = decode_context(data, seq=seq)
    shown = context.outcomes[:_MAX_OUTCOMES_SHOWN]
    outcomes = "; ".join(_outcome(o) for o in shown) or "no outcome"
    if len(context.outcomes) > len(shown):
        outcomes += f"; and {len(context.outcomes) - len(shown)} more"
    positions = ", ".join(f"{s} {q:+d}" for s, q in context.positions) or "none"
    return f"feedback for batch {context.seq}: {outcomes}; positions {positions}"


def describe_body(record: Record) -> str:
    """One line saying what ``record``'s body holds, decoded through ``zcbench.strategy``: a
    batch's events, a venue state at start, a feedback record's outcomes and positions, or the
    signals."""
    from zcbench.strategy import (
        decode_batch,
        decode_signals,
        is_context,
        is_snapshot_note,
        is_start,
    )

    try:
        if record.kind == "in" and is_start(record.body):
            from zcbench.strategy import decode_start

            state = decode_start(record.body)
            held = ", ".join(f"{s} {q:+,}" for s, q in state.positions) or "none"
            return (f"venue state at start ({state.venue}): positions {held}; "
                    f"{len(state.executions)} reports recovered, {len(state.open_orders)} "
                    f"open orders, {len(state.not_acted)} signals not acted on")
        if record.kind == "in" and is_context(record.body):
            return describe_feedback(record.body, seq=record.batch_seq)
        if record.kind == "in":
            events = decode_batch(record.body, seq=record.batch_seq).events
            symbols = ", ".join(sorted(events.get_column("symbol").unique().to_list()))
            return f"{events.height} events: {symbols}"
        if record.kind == "note" and is_snapshot_note(record.body):
            return describe_snapshot(record.body)
        if record.kind == "out":
            signals = decode_signals(record.body)
            if not signals:
                return "no signal"
            return "; ".join(f"{s.side} {s.quantity} {s.symbol}{_price(s.limit_price)}"
                             for s in signals)
    except ZcbenchError as exc:
        return f"undecodable body: {exc}"
    if record.kind == "boot":
        return f"boot attestation document, {len(record.body)} bytes"
    structured = _structured_note(record.body) if record.kind == "note" else None
    if structured is not None:
        return structured if len(structured) <= 160 else structured[:159] + "…"
    text = record.body.decode("utf-8", "replace")
    return text if len(text) <= 80 else text[:79] + "…"


def _total(path: str | Path) -> int:
    where = locate_log(path)
    if where.kind == "slice":
        return 1 + len(LogSlice.read(where.target).entries)
    return LogWalk(where.target, OsFileSystem()).count_records()


def _listed(record: Record, decode: bool) -> ListedRecord:
    return ListedRecord(
        index=record.index, kind=record.kind, seq=record.seq,
        time=format_time_ns(record.time_ns), event_time=format_time_ns(record.event_time_ns),
        body_bytes=len(record.body),
        summary=describe_body(record) if decode else f"{len(record.body)} bytes",
    )


def list_records(
    path: str | Path,
    record_filter: RecordFilter | None = None,
    *,
    limit: int | None = 20,
    decode: bool = True,
) -> Listing:
    """The first ``limit`` records (all when None) that ``record_filter`` keeps, streamed."""
    chosen = record_filter or RecordFilter()
    total = _total(path)
    rows: list[ListedRecord] = []
    matched = 0
    stream: Iterator[tuple[Record, bytes]] = iter_records(path, chosen)
    complete = True
    for record, _ in stream:
        if limit is not None and len(rows) >= limit:
            complete = False
            break
        rows.append(_listed(record, decode))
        matched += 1
    close = getattr(stream, "close", None)
    if close is not None:
        close()
    return Listing(tuple(rows), total, chosen.describe(), complete,
                   matched if complete else None)
