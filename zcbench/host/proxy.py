"""The market-data proxy: sources in, stripped and stamped batches out, through a bounded queue.

Sources yield event frames in the full event schema. A *replay* source yields event-time
batches (made by :func:`zcbench.marketdata.batches`, the same call the backtest uses, so parity
holds) either as fast as possible or paced at N× real time by event time. A *live* source yields
events as they arrive; the proxy cuts them with the same event-time rule
(:class:`zcbench.marketdata.EventTimeBatcher`) and also flushes the open batch once its oldest
event has waited ``max_delay_s`` of wall-clock time (those live
batches are whatever the log records; replay uses the logged batches).

Every batch is reduced to the fields the strategy declared (:func:`zcbench.strategy.
select_fields`: nothing undeclared reaches the enclave) and stamped with the wall-clock time its
newest event reached the proxy, from which the run measures freshness.

Backpressure: a replay source blocks while the queue is full (nothing is dropped). A live source
cannot be paused, so a batch that finds the queue full is dropped *and counted* when the backlog
is sustained (:class:`Backlog`: the run is taking batches, fewer than arrive); while the run is
momentarily stalled (an fsync, a descheduled process: nothing taken lately) or draining faster
than batches arrive, the batch is held instead, up to ``hold`` times the queue's size (by
default 1: not held). The
counts are in :meth:`MarketDataProxy.stats` and the run summary, and every stretch of drops is
handed on as a :class:`DropReport` (:meth:`MarketDataProxy.take_drops`), which the run has the
enclave record in the signed log as a ``note`` record before the next batch. Clocks and sleeps
are parameters.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import functools
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl

from zcbench import _cbor
from zcbench.auditlog.writer import batch_event_time
from zcbench.errors import UsageError
from zcbench.marketdata import (
    BatchSpec,
    EventTimeBatcher,
    SyntheticConfig,
    batch_bounds,
    generate_ticks,
)
from zcbench.strategy import Batch, encode_batch, select_fields
from zcbench.strategy._wire import BatchColumns, select_columns

__all__ = [
    "DROPPED_NOTE",
    "Backlog",
    "DropReport",
    "LiveSource",
    "MarketDataProxy",
    "ProxyBatch",
    "ProxyStats",
    "ReplaySource",
    "synthetic_feed",
]

Clock = Callable[[], int]
Sleep = Callable[[float], None]
_END: Final = object()
_PREPARED_ROWS: Final = 32_768


@dataclass(frozen=True, slots=True)
class ProxyBatch:
    """One batch as the proxy hands it on.

    ``events`` holds only the declared fields; ``market`` the price fields the execution layer
    marks to (``symbol`` plus whichever of price, bid, ask, close the source has);
    ``received_ns`` is the wall-clock time the newest event reached the proxy. ``wire``, when
    set, encodes the batch from columns prepared once for a whole recording
    (:class:`~zcbench.strategy._wire.BatchColumns`: the same bytes as
    :func:`~zcbench.strategy.encode_batch`, at a fraction of the cost).
    """

    events: pl.DataFrame
    market: pl.DataFrame
    received_ns: int
    newest_event_ns: int
    wire: Callable[[], bytes] | None = None

    def __len__(self) -> int:
        return self.events.height

    def encode(self) -> bytes:
        """The batch's wire encoding (whatever its seq: the frame and the record carry that)."""
        if self.wire is not None:
            return self.wire()
        return encode_batch(Batch(0, self.events))


@dataclass(frozen=True, slots=True)
class DropReport:
    """Batches the proxy dropped since the last report: how many, their events, and the range of
    their event times and of the wall-clock times they reached the proxy (ns since the epoch).

    ``after_seq`` is set by the sender: the last batch sent before them (None: before any)."""

    batches: int
    events: int
    first_event_ns: int
    last_event_ns: int
    first_received_ns: int
    last_received_ns: int
    after_seq: int | None = None

    def note_body(self) -> bytes:
        """The body of the log's ``note`` record for these drops (canonical CBOR)."""
        return _cbor.encode_canonical(
            {
                "note": DROPPED_NOTE,
                "batches": self.batches,
                "events": self.events,
                "after_seq": self.after_seq,
                "first_event_ns": self.first_event_ns,
                "last_event_ns": self.last_event_ns,
                "first_received_ns": self.first_received_ns,
                "last_received_ns": self.last_received_ns,
            }
        )

    def merged(self, batch: ProxyBatch, events: int) -> DropReport:
        """This report with one more dropped batch."""
        return DropReport(
            self.batches + 1,
            self.events + events,
            min(self.first_event_ns, batch.newest_event_ns),
            max(self.last_event_ns, batch.newest_event_ns),
            min(self.first_received_ns, batch.received_ns),
            max(self.last_received_ns, batch.received_ns),
        )


DROPPED_NOTE: Final = "dropped"
"""The ``note`` key of a log note recording batches the proxy dropped."""


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """What went through the proxy; nothing is dropped without showing up here."""

    batches: int
    events: int
    dropped_batches: int
    dropped_events: int
    max_queue: int


class Backlog:
    """When a live batch that finds the proxy's queue at its size is dropped: only for a
    sustained backlog.

    A stall downstream (one slow fsync, a process without a core for a while) stops the run
    taking batches altogether; the batches that arrive meanwhile are held and the run catches
    up once it resumes. A sustained backlog is the run taking batches, but fewer than arrive.
    Over the last ``window_ns`` the rule looks at the consumer's takes and the arrivals since its
    first take in that span: no take in the last quarter of it (stalled) or at least as many
    takes as arrivals (draining) keeps the batch; fewer takes than arrivals drops it. At
    ``limit`` queued batches a batch is dropped whatever the reason, so a stall that does not
    end still has a bound in memory.
    Times are ns of the proxy's clock; not thread-safe by itself (the proxy holds a lock).
    """

    def __init__(self, limit: int, window_ns: int) -> None:
        if limit < 1 or window_ns <= 0:
            raise UsageError("a backlog needs a limit >= 1 and a positive window")
        self.limit = limit
        self.window_ns = window_ns
        self._takes: collections.deque[int] = collections.deque()
        self._arrivals: collections.deque[int] = collections.deque()

    def took(self, now_ns: int) -> None:
        """The consumer took a batch at ``now_ns``."""
        self._takes.append(now_ns)
        self._trim(self._takes, now_ns)

    def arrived(self, now_ns: int) -> None:
        """A batch arrived at ``now_ns`` (kept or not)."""
        self._arrivals.append(now_ns)
        self._trim(self._arrivals, now_ns)

    def keep(self, queued: int, now_ns: int) -> bool:
        """Whether a batch arriving at ``now_ns`` to find ``queued`` batches (at least the
        queue's size) is held rather than dropped; call :meth:`arrived` for it first."""
        if queued >= self.limit:
            return False
        self._trim(self._takes, now_ns)
        if not self._takes or self._takes[-1] < now_ns - self.window_ns // 4:
            return True  # stalled: nothing taken lately
        first = self._takes[0]
        since = len(self._arrivals) - bisect.bisect_left(self._arrivals, first)
        return len(self._takes) >= since

    def _trim(self, times: collections.deque[int], now_ns: int) -> None:
        while times and times[0] < now_ns - self.window_ns:
            times.popleft()


class ReplaySource:
    """Replays recorded events cut by ``spec`` (the backtest's cuts), as fast as possible or at
    ``rate``× real time by event time."""

    live = False

    def __init__(
        self,
        events: pl.DataFrame,
        spec: BatchSpec,
        *,
        rate: float | None = None,
        clock: Clock = time.monotonic_ns,
        sleep: Sleep = time.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise UsageError(f"replay rate must be positive, got {rate}")
        self.spec = spec
        self._events = events
        self._pacer = _Pacer(rate, clock, sleep)

    @property
    def events(self) -> pl.DataFrame:
        """Every event the recording replays."""
        return self._events

    def __iter__(self) -> Iterator[pl.DataFrame]:
        for start, end in batch_bounds(self._events.get_column("ts"), self.spec):
            frame = self._events.slice(start, end - start)
            self._pacer.wait_for(frame)
            yield frame

    def stripped(self, fields: Sequence[str]) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
        """Per batch: its declared fields and its market prices, paced like ``__iter__``.

        The fields are stripped once for the whole recording (as the backtest does) and each
        batch is a zero-copy slice, so the proxy does no per-batch work on recorded data.
        """
        for events, market, _ in self.prepared(fields):
            yield events, market

    def prepared(
        self, fields: Sequence[str]
    ) -> Iterator[tuple[pl.DataFrame, pl.DataFrame, Callable[[], bytes]]]:
        """As :meth:`stripped`, with each batch's wire encoder (-> bytes), from the
        recording's columns prepared once."""
        selected = select_fields(self._events, fields)
        market = _market_columns(self._events)
        # prepared a stretch of rows at a time: no pause before the first batch, and no second
        # copy of the whole recording
        first = last = 0
        columns = BatchColumns(selected.clear())
        for start, end in batch_bounds(self._events.get_column("ts"), self.spec):
            if end > last:
                first, last = start, max(end, min(selected.height, start + _PREPARED_ROWS))
                columns = BatchColumns(selected.slice(first, last - first))
            events = selected.slice(start, end - start)
            self._pacer.wait_for(events)
            wire = functools.partial(columns.encode, start=start - first, end=end - first)
            yield events, market.slice(start, end - start), wire


_MARKET = ("ts", "kind", "price", "size", "bid", "ask", "bid_size", "ask_size", "close", "volume")


def _market_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """``symbol`` and whichever of ts, kind, price, bid, ask, close and their sizes the frame
    has (no copy): what the execution layer and its venue price and fill against."""
    have = frame.columns
    return select_columns(frame, ["symbol"] + [c for c in _MARKET if c in have])


class _Pacer:
    def __init__(self, rate: float | None, clock: Clock, sleep: Sleep) -> None:
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._start: tuple[int, int] | None = None

    def wait_for(self, frame: pl.DataFrame) -> None:
        if self._rate is None or frame.height == 0:
            return
        ts = frame.get_column("ts")
        if self._start is None:
            self._start = (self._clock(), int(ts[0]))
        wall0, event0 = self._start
        due = wall0 + (int(ts[-1]) - event0) / self._rate
        wait = (due - self._clock()) / 1e9
        if wait > 0:
            self._sleep(wait)


class LiveSource:
    """Events as they arrive: ``chunks`` (sorted by event time) are released at ``rate``× real
    time by event time, for at most ``duration_s`` seconds of wall time (None: until they end).
    The proxy batches them by ``spec`` with its maximum-delay rule.

    ``lossless``: the source can wait (a recorded feed read as it goes, a synthetic feed): the
    proxy then holds it back while its queue is full instead of dropping batches."""

    live = True

    def __init__(
        self,
        chunks: Iterable[pl.DataFrame],
        spec: BatchSpec,
        *,
        rate: float = 1.0,
        duration_s: float | None = None,
        clock: Clock = time.monotonic_ns,
        sleep: Sleep = time.sleep,
        lossless: bool = False,
    ) -> None:
        if rate <= 0:
            raise UsageError(f"live rate must be positive, got {rate}")
        self.spec = spec
        self.lossless = lossless
        self._chunks = chunks
        self._pacer = _Pacer(rate, clock, sleep)
        self._duration_ns = None if duration_s is None else int(duration_s * 1e9)
        self._clock = clock

    def __iter__(self) -> Iterator[pl.DataFrame]:
        start = self._clock()
        for chunk in self._chunks:
            if self._duration_ns is not None and self._clock() - start > self._duration_ns:
                return
            self._pacer.wait_for(chunk)
            yield chunk


def synthetic_feed(
    config: SyntheticConfig, *, seed: int, block_s: float = 1.0, arrival_s: float = 0.001
) -> Iterator[pl.DataFrame]:
    """Synthetic ticks as a live feed delivers them, for :class:`LiveSource`: ``config.rate``
    events per second for ``config.duration_s`` seconds, in arrivals of about ``arrival_s``.

    Generated ``block_s`` seconds at a time (block k by
    :func:`~zcbench.marketdata.generate_ticks` with seed ``(seed, k)``, its clock continuing
    the last block's; each block's prices start again from the base prices), so memory stays
    that of one block however long the run: a trading day's feed is never held whole.
    """
    if block_s <= 0 or arrival_s <= 0:
        raise UsageError("block_s and arrival_s must be positive")
    block_ns = int(block_s * 1e9)
    blocks = max(1, math.ceil(config.duration_s / block_s))
    step = max(1, round(config.rate * arrival_s))
    for k in range(blocks):
        span = min(block_s, config.duration_s - k * block_s)
        if span <= 0:
            return
        part = dataclasses.replace(config, duration_s=span, start_ns=config.start_ns + k * block_ns)
        block_seed = int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
        ticks = generate_ticks(part, seed=block_seed)
        for i in range(0, ticks.height, step):
            yield ticks.slice(i, step)


class MarketDataProxy:
    """Runs a source on its own thread into a bounded queue; iterate to get :class:`ProxyBatch`.

    ``fields``: the strategy's declared input fields. ``max_delay_s`` applies to live sources,
    and so do ``hold`` and ``backlog_window_s``: a batch finding ``queue_size`` batches queued
    is dropped only for a sustained backlog (:class:`Backlog` over that window), and always at
    ``hold * queue_size`` (``hold=1``, the default: every batch finding the queue full is
    dropped, so the strategy stays close to the market; holding through a stall loses nothing but
    hands the strategy older data, and measured on a shared disk it lengthened the p99).
    """

    def __init__(
        self,
        source: ReplaySource | LiveSource,
        fields: Sequence[str],
        *,
        queue_size: int = 64,
        max_delay_s: float = 0.05,
        hold: int = 1,
        backlog_window_s: float = 0.5,
        clock: Clock = time.time_ns,
    ) -> None:
        if queue_size < 1 or max_delay_s <= 0 or hold < 1 or backlog_window_s <= 0:
            raise UsageError(
                "queue_size and hold must be >= 1, max_delay_s and backlog_window_s > 0"
            )
        self._source = source
        self._fields = tuple(fields)
        self._queue_size = queue_size
        self._backlog = Backlog(queue_size * hold, int(backlog_window_s * 1e9))
        self._backlog_lock = threading.Lock()
        # a source that can wait blocks at queue_size; a live batch held in a stall may go past
        lossy = isinstance(source, LiveSource) and not source.lossless
        self._queue: queue.Queue[object] = queue.Queue(queue_size * hold if lossy else queue_size)
        self._max_delay_ns = int(max_delay_s * 1e9)
        self._clock = clock
        self._stop = threading.Event()
        self.source_done = threading.Event()
        """Set once the source is exhausted (or failed); queued batches may remain."""
        self._thread = threading.Thread(target=self._run, name="zcbench-proxy", daemon=True)
        self._error: BaseException | None = None
        self._batches = self._events = self._dropped_batches = self._dropped_events = 0
        self._max_queue = 0
        self._drops: DropReport | None = None
        self._drops_lock = threading.Lock()

    def take_drops(self) -> DropReport | None:
        """The drops since the last call (None: none), for the signed log."""
        with self._drops_lock:
            report, self._drops = self._drops, None
        return report

    def start(self) -> MarketDataProxy:
        """Start pulling from the source."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop pulling; batches already queued are still handed out."""
        self._stop.set()

    def stats(self) -> ProxyStats:
        """Counts so far."""
        return ProxyStats(
            self._batches,
            self._events,
            self._dropped_batches,
            self._dropped_events,
            self._max_queue,
        )

    def __iter__(self) -> Iterator[ProxyBatch]:
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set() and not self._thread.is_alive():
                    return
                continue
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            assert isinstance(item, ProxyBatch)
            with self._backlog_lock:
                self._backlog.took(self._clock())
            yield item

    def _run(self) -> None:
        try:
            if isinstance(self._source, LiveSource):
                self._run_live()
            else:
                for events, market, wire in self._source.prepared(self._fields):
                    if self._stop.is_set():
                        break
                    self._offer(events, market, block=True, wire=wire)
        except BaseException as exc:  # handed to the consumer, who re-raises it
            self._error = exc
        finally:
            self.source_done.set()
            while True:
                try:
                    self._queue.put(_END, timeout=0.1)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        break

    def _run_live(self) -> None:
        assert isinstance(self._source, LiveSource)
        batcher: EventTimeBatcher | None = None
        pending = 0
        first_ns = 0
        spec = self._source.spec
        block = self._source.lossless
        for chunk in self._source:
            if self._stop.is_set():
                break
            if batcher is None:
                # every column the source has, so the market prices survive until _put strips
                batcher = EventTimeBatcher(chunk.columns, width_ns=spec.width_ns, count=spec.count)
            if pending == 0:
                first_ns = self._clock()
            for batch in batcher.push(chunk):
                self._put(batch.events, block=block)
                pending -= batch.events.height
            pending += chunk.height
            if pending and self._clock() - first_ns >= self._max_delay_ns:
                for batch in batcher.flush():
                    self._put(batch.events, block=block)
                pending = 0
        if batcher is not None:
            for batch in batcher.flush():
                self._put(batch.events, block=block)

    def _put(self, frame: pl.DataFrame, *, block: bool) -> None:
        self._offer(select_fields(frame, self._fields), _market_columns(frame), block=block)

    def _offer(
        self,
        events: pl.DataFrame,
        market: pl.DataFrame,
        *,
        block: bool,
        wire: Callable[[], bytes] | None = None,
    ) -> None:
        if events.height == 0:
            return
        item = ProxyBatch(
            events=events,
            market=market,
            received_ns=self._clock(),
            newest_event_ns=batch_event_time(events.get_column("ts")) or 0,
            wire=wire,
        )
        frame = events
        if block:
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            else:
                return
        else:
            with self._backlog_lock:
                self._backlog.arrived(item.received_ns)
                queued = self._queue.qsize()
                keep = queued < self._queue_size or self._backlog.keep(queued, item.received_ns)
            if keep:
                try:
                    self._queue.put_nowait(item)
                except queue.Full:  # the hold limit
                    keep = False
            if not keep:
                self._dropped_batches += 1
                self._dropped_events += frame.height
                with self._drops_lock:
                    self._drops = (
                        DropReport(
                            1, frame.height, item.newest_event_ns, item.newest_event_ns,
                            item.received_ns, item.received_ns,
                        )
                        if self._drops is None
                        else self._drops.merged(item, frame.height)
                    )
                return
        self._batches += 1
        self._events += frame.height
        self._max_queue = max(self._max_queue, self._queue.qsize())
