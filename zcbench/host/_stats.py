"""Latency distributions of a live run in fixed memory: one shape, one percentile definition.

Freshness (a batch's newest event reaching the proxy -> its signals acted on) and the batch round
trip (ingest sent -> signed reply received) are both recorded here, per batch, in nanoseconds.
A run of a trading day records millions of batches, so nothing keeps the values: each goes into
a bucket of a fixed log-spaced grid (1 us to 1,000 s, buckets 1.04 % wide), plus exact counts for
the coarse buckets the run summary shows.

The one percentile definition (:meth:`Distribution.percentile`): nearest rank. The p-th
percentile of n values is the value of rank ceil(p/100 * n) in sorted order, reported as the
upper edge of the grid bucket that holds it (so never below the true value, at most 1.04 % above
it). The progress line's recent figures use the same definition over the batches of the last one
to two windows.
"""

from __future__ import annotations

import bisect
import math
from typing import Final

import numpy as np

__all__ = ["BUCKETS_MS", "Distribution", "LatencyRecorder"]

_LOW_NS: Final = 1_000  # 1 us
_HIGH_NS: Final = 10**12  # 1,000 s
_STEPS: Final = 2_000
_EDGES: Final = np.geomspace(_LOW_NS, _HIGH_NS, _STEPS + 1)
_EDGE_LIST: Final = [float(e) for e in _EDGES]
BUCKETS_MS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""The run summary's freshness buckets: ``"<=N ms"`` for each, then ``">5000 ms"``."""
BUCKETS_NS: Final = tuple(b * 1_000_000 for b in BUCKETS_MS)
_PER_LOG: Final = _STEPS / math.log(_HIGH_NS / _LOW_NS)


class Distribution:
    """Counts of values (ns) on the fixed grid; O(1) memory whatever the number recorded."""

    __slots__ = ("_coarse", "_fine", "count")

    def __init__(self) -> None:
        # fine[0]: below 1 us (and negative: a clock step); fine[-1]: above 1,000 s. Plain lists:
        # one increment per value is cheaper on a list than on a numpy array.
        self._fine = [0] * (_STEPS + 2)
        self._coarse = [0] * (len(BUCKETS_MS) + 1)
        self.count = 0

    def add(self, value_ns: int) -> None:
        """Record one value."""
        if value_ns <= _LOW_NS:
            fine = 0
        else:
            # the bucket i with EDGES[i-1] < v <= EDGES[i], by arithmetic (a search per value
            # costs more than the rest of the recording)
            fine = min(_STEPS + 1, math.ceil(math.log(value_ns / _LOW_NS) * _PER_LOG))
            if fine <= _STEPS and value_ns > _EDGE_LIST[fine]:  # float rounding at an edge
                fine += 1
        self._fine[fine] += 1
        self._coarse[bisect.bisect_left(BUCKETS_NS, value_ns)] += 1
        self.count += 1

    def merged(self, other: Distribution) -> Distribution:
        """A new distribution holding both."""
        out = Distribution()
        out._fine = [a + b for a, b in zip(self._fine, other._fine, strict=True)]
        out._coarse = [a + b for a, b in zip(self._coarse, other._coarse, strict=True)]
        out.count = self.count + other.count
        return out

    def percentile(self, p: float) -> float:
        """The p-th percentile in milliseconds (module docstring); 0.0 when empty."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(p / 100 * self.count))
        bucket = int(np.searchsorted(np.cumsum(self._fine), rank, side="left"))
        if bucket == 0:
            return _LOW_NS / 1e6
        return float(_EDGES[min(bucket, _STEPS)]) / 1e6

    def histogram(self) -> dict[str, int]:
        """Values per summary bucket, keyed ``"<=N ms"`` (and ``">5000 ms"``), all keys
        present; exact, not read from the grid."""
        keys = [f"<={b} ms" for b in BUCKETS_MS] + [f">{BUCKETS_MS[-1]} ms"]
        return dict(zip(keys, self._coarse, strict=True))


class LatencyRecorder:
    """A whole run's :class:`Distribution` and a recent one (the last ``window`` to
    ``2 * window`` values) for the progress line. Each value is counted once, in the current
    window; a full window is folded into the total."""

    def __init__(self, window: int = 2_000) -> None:
        self._window = window
        self._folded = Distribution()
        self._current = Distribution()
        self._previous = Distribution()

    def add(self, value_ns: int) -> None:
        """Record one value."""
        current = self._current
        current.add(value_ns)
        if current.count >= self._window:
            self._folded = self._folded.merged(current)
            self._previous, self._current = current, Distribution()

    @property
    def total(self) -> Distribution:
        """Every value recorded."""
        return self._folded.merged(self._current)

    def recent(self) -> Distribution:
        """The recent values' distribution."""
        return self._previous.merged(self._current)
