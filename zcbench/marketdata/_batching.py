"""Event-time batching: cut a sorted event stream into the batches a strategy sees.

Two rules, both in **event time** so the backtest and the enclave cut the same data the same way:

- ``width_ns``: events whose ``ts // width_ns`` is equal form one batch (buckets aligned to the
  Unix epoch, not to the first event, so any slice of a stream batches like the whole); empty
  buckets give no batch;
- ``count``: every ``count`` consecutive events form one batch (the last may be shorter).

Batches are numbered 0, 1, 2, ... with no gaps, and hold only the fields the strategy declared
(through :func:`zcbench.strategy.select_fields`).

:func:`batches` cuts a whole frame at once. :class:`EventTimeBatcher` does the same
incrementally for a live source: it is fed events as they arrive and hands out each batch once an
event past it is seen. It is the seam for the live run's wall-clock rule, which closes the open
batch early through :meth:`EventTimeBatcher.flush` when it has waited too long; those batches are
what the log records, and replay uses the logged batches, not a re-batching.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from zcbench.errors import DataError, UsageError
from zcbench.strategy import Batch, select_fields

__all__ = ["BatchSpec", "EventTimeBatcher", "batch_bounds", "batch_ends", "batches"]


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """One batching rule: exactly one of ``width_ns`` (bucket width) and ``count`` is set."""

    width_ns: int | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        if (self.width_ns is None) == (self.count is None):
            raise UsageError("batching: give exactly one of width_ns and count")
        for name, value in (("width_ns", self.width_ns), ("count", self.count)):
            if value is not None and (type(value) is not int or value <= 0):
                raise UsageError(f"batching: {name} must be a positive int, got {value!r}")

    def describe(self) -> dict[str, int]:
        """The rule as a small JSON-able map (what a manifest records)."""
        if self.width_ns is not None:
            return {"width_ns": self.width_ns}
        assert self.count is not None
        return {"count": self.count}


def batch_ends(ts: pl.Series, spec: BatchSpec) -> np.ndarray[Any, Any]:
    """Each batch's end row (exclusive) of a sorted ``ts`` column, as int64; batch ``i`` is
    rows ``ends[i - 1]`` (0 for the first) to ``ends[i]``. One array, not a Python object per
    batch: a million one-bar batches cost 8 MB here."""
    n = ts.len()
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if ts.null_count():
        raise DataError("batching: ts has missing values")
    if spec.count is not None:
        return np.minimum(np.arange(spec.count, n + spec.count, spec.count, dtype=np.int64), n)
    assert spec.width_ns is not None
    values = ts.to_numpy()
    if np.any(values[1:] < values[:-1]):
        raise DataError("batching: events must be sorted by ts")
    bucket = values // spec.width_ns  # floor division: aligned to the epoch, also before 1970
    cuts = np.flatnonzero(bucket[1:] != bucket[:-1]) + 1
    return np.append(cuts, n).astype(np.int64)


def batch_bounds(ts: pl.Series, spec: BatchSpec) -> list[tuple[int, int]]:
    """The ``[start, end)`` row ranges of each batch of a sorted ``ts`` column."""
    ends = batch_ends(ts, spec).tolist()
    return list(zip([0, *ends[:-1]], ends, strict=True))


def batches(
    events: pl.DataFrame,
    fields: Sequence[str],
    *,
    width_ns: int | None = None,
    count: int | None = None,
    first_seq: int = 0,
) -> Iterator[Batch]:
    """The batches of ``events`` (sorted by ``ts``) holding only ``fields`` plus ts and symbol."""
    spec = BatchSpec(width_ns=width_ns, count=count)
    bounds = batch_bounds(events.get_column("ts"), spec)
    selected = select_fields(events, fields)
    for i, (start, end) in enumerate(bounds):
        yield Batch(seq=first_seq + i, events=selected.slice(start, end - start))


class EventTimeBatcher:
    """Incremental event-time batching with the same cuts as :func:`batches`.

    ``push`` returns the batches that the new events closed; ``flush`` closes the open batch
    (end of stream, or the live source's wall-clock rule) and returns it, if any.
    """

    def __init__(
        self, fields: Sequence[str], *, width_ns: int | None = None, count: int | None = None
    ) -> None:
        self.spec = BatchSpec(width_ns=width_ns, count=count)
        self.fields = tuple(fields)
        self._next_seq = 0
        self._pending: list[pl.DataFrame] = []
        self._pending_rows = 0
        self._last_ts: int | None = None

    @property
    def next_seq(self) -> int:
        """The sequence number the next batch will carry."""
        return self._next_seq

    def _emit(self, frames: list[pl.DataFrame]) -> Batch:
        batch = Batch(seq=self._next_seq, events=pl.concat(frames, how="vertical"))
        self._next_seq += 1
        return batch

    def push(self, events: pl.DataFrame) -> list[Batch]:
        """Add events (sorted, and not older than any event pushed before)."""
        if events.height == 0:
            return []
        chunk = select_fields(events, self.fields)
        ts = chunk.get_column("ts")
        first = ts[0]
        if self._last_ts is not None and first < self._last_ts:
            raise DataError(
                f"batching: event at ts {first} is older than one already seen ({self._last_ts})"
            )
        self._last_ts = ts[-1]
        out: list[Batch] = []
        if self.spec.count is not None:
            take = self.spec.count - self._pending_rows
            while chunk.height >= take:
                out.append(self._emit([*self._pending, chunk.slice(0, take)]))
                self._pending, self._pending_rows = [], 0
                chunk = chunk.slice(take)
                take = self.spec.count
        else:
            if self._pending:
                width = self.spec.width_ns
                assert width is not None
                open_bucket = self._pending[0].get_column("ts")[0] // width
                if first // width != open_bucket:
                    out.append(self.flush_batch())
            bounds = batch_bounds(ts, self.spec)
            for start, end in bounds[:-1]:
                out.append(self._emit([*self._pending, chunk.slice(start, end - start)]))
                self._pending, self._pending_rows = [], 0
            start, end = bounds[-1]
            chunk = chunk.slice(start, end - start)
        if chunk.height:
            self._pending.append(chunk)
            self._pending_rows += chunk.height
        return out

    def flush_batch(self) -> Batch:
        """Close the open batch; raises if there is none (see :meth:`flush`)."""
        if not self._pending:
            raise UsageError("batching: no open batch to flush")
        batch = self._emit(self._pending)
        self._pending, self._pending_rows = [], 0
        return batch

    def flush(self) -> list[Batch]:
        """Close the open batch, if any: ``[]`` or one batch."""
        return [self.flush_batch()] if self._pending else []
