"""The batch codec's identity, proven once for a whole stream instead of paid on every batch.

A backtest of one bar per batch would otherwise build, encode and decode one tiny frame per bar,
which costs a hundred times the strategy's own work. It need not: the column-wise codec is the
identity on every frame :func:`select_fields` produces. An integer column is its values (0 in
null slots) and a validity bitmap, a string column a dictionary and codes, and decoding gives
back each row's value, the schema's dtype and the canonical column order, from that row's bytes
alone. So a slice of the selected stream *is* the frame ``decode_batch(encode_batch(slice))``
gives, provided the decoder would accept the batch at all.

:func:`wire_view` checks, for the whole stream at once, everything the decoder refuses that a
valid selected frame can hold (the events per batch, the length of every string) and returns
the stream in one chunk, so each batch is a zero-copy slice of it. The tests prove the identity
on random streams, on every example and on the refusals (``tests/backtest/test_fastpath.py``:
the same batches frame for frame, the same wire bytes per batch, the same signals, digest and
fills, the same errors); a change to the codec that breaks it fails them. Nothing here is a
second codec.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from zcbench.errors import DataError
from zcbench.strategy._schema import EVENT_SCHEMA, REQUIRED_FIELDS
from zcbench.strategy._wire import _MAX_STR, MAX_BATCH_EVENTS

__all__ = ["wire_view"]


def wire_view(
    selected: pl.DataFrame,
    ends: np.ndarray[Any, Any],
    *,
    max_events: int = MAX_BATCH_EVENTS,
) -> pl.DataFrame:
    """``selected`` (a :func:`select_fields` frame) as the wire delivers it, in one chunk.

    ``ends`` are the batches' end rows (increasing, the last equal to ``selected.height``).
    Raises the :class:`DataError` the decoder raises for the first batch it would refuse.
    """
    if ends.size and (
        int(ends[-1]) != selected.height or int(ends[0]) <= 0 or np.any(np.diff(ends) <= 0)
    ):
        raise ValueError("batch ends must increase and end at the stream's last row")
    wanted = list(REQUIRED_FIELDS) + sorted(set(selected.columns) - set(REQUIRED_FIELDS))
    if selected.columns != wanted or any(
        selected.schema[c] != EVENT_SCHEMA[c] for c in selected.columns
    ):
        raise ValueError("wire_view takes a frame from select_fields (schema order and types)")
    sizes = np.diff(ends, prepend=0)
    over = np.flatnonzero(sizes > max_events)
    if over.size:
        seq = int(over[0])
        raise DataError(f"batch {seq}: event count {int(sizes[seq])} outside 0..{max_events}")
    for name in selected.columns:
        if selected.schema[name] != pl.String:
            continue
        long = selected.get_column(name).str.len_chars() > _MAX_STR
        hit = long.fill_null(False).arg_true()
        if hit.len():
            seq = int(np.searchsorted(ends, int(hit[0]), side="right"))
            raise DataError(
                f"batch {seq} column {name!r}: dict must be a list of strings of at most {_MAX_STR}"
            )
    return selected.rechunk()
