"""The wire codec applied to a whole stream at once, for replays that cut it into many batches.

A backtest of one bar per batch would otherwise build, encode and decode one tiny frame per bar,
which costs a hundred times the strategy's own work. :func:`decode_stream` sends the stream
through the very same :func:`encode_batch` and :func:`decode_batch` in a few large pieces, each
made of whole batches, and returns the decoded stream; a batch is then a zero-copy slice of it.

Why that is the same thing the enclave sees: the per-batch codec is column-wise and row-local.
An integer column is its values (0 in null slots) and a validity bitmap, a string column a
dictionary and codes, and decoding gives each row back from its own bytes alone, so decoding a
piece of many batches and slicing one batch out gives the rows, dtypes and column order that
decoding that batch alone gives. The tests prove it on random streams and on every example
(``tests/test_backtest_fastpath.py``: the same batches, frame for frame, the same wire bytes
for each batch, the same signals and fills); nothing here is a second codec.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import polars as pl

from zcbench.strategy._contract import Batch
from zcbench.strategy._wire import MAX_BATCH_EVENTS, decode_batch, encode_batch

__all__ = ["PIECE_EVENTS", "decode_stream", "stream_pieces"]

PIECE_EVENTS: Final = 65_536
"""Events per encoded piece: large enough that per-call costs vanish, small enough that a
piece's wire bytes are a small fraction of the stream (peak memory stays near the frames')."""


def stream_pieces(
    ends: np.ndarray[Any, Any], *, piece_events: int = PIECE_EVENTS
) -> list[tuple[int, int]]:
    """``[start, end)`` row ranges of whole consecutive batches (``ends``: each batch's end
    row), each at most ``piece_events`` rows unless one batch alone is longer."""
    if piece_events <= 0:
        raise ValueError("piece_events must be positive")
    pieces: list[tuple[int, int]] = []
    start, k, n = 0, 0, int(ends.size)
    while k < n:
        # the last batch ending within the budget, or this one batch when it alone is longer
        last = max(int(np.searchsorted(ends, start + piece_events, side="right")) - 1, k)
        end = int(ends[last])
        pieces.append((start, end))
        start, k = end, last + 1
    return pieces


def decode_stream(
    selected: pl.DataFrame,
    ends: np.ndarray[Any, Any],
    *,
    piece_events: int = PIECE_EVENTS,
) -> pl.DataFrame:
    """``selected`` (already through ``select_fields``) as the wire delivers it.

    Each piece of whole batches (see :func:`stream_pieces`; ``ends`` are the batches' end
    rows, increasing, the last equal to ``selected.height``) is encoded with
    :func:`encode_batch` and decoded with :func:`decode_batch`; the pieces are concatenated
    without copying, so ``result.slice(start, end - start)`` for a batch's rows is that batch's
    frame, a view inside one piece.
    """
    if ends.size and (
        int(ends[-1]) != selected.height or np.any(np.diff(ends) <= 0) or ends[0] <= 0
    ):
        raise ValueError("batch ends must increase and end at the stream's last row")
    frames: list[pl.DataFrame] = []
    for k, (s, e) in enumerate(stream_pieces(ends, piece_events=piece_events)):
        wire = encode_batch(Batch(seq=k, events=selected.slice(s, e - s)))
        frames.append(decode_batch(wire, max_events=max(MAX_BATCH_EVENTS, e - s)).events)
        del wire
    if not frames:
        return decode_batch(encode_batch(Batch(seq=0, events=selected.clear()))).events
    return pl.concat(frames, how="vertical", rechunk=False)
