"""The backtest's closed loop: the live run's execution layer, paper venue and feedback.

A live run with feedback (``zcbench.host.live``) acts on batch k's signals before it takes
batch k+1's feedback: the execution layer (:class:`zcbench.host.execution.ExecutionLayer`) sees
the batch's market events, its venue (:class:`zcbench.venue.PaperVenue`) fills what rests, the
signals are placed under the risk limits, and :class:`zcbench.host.feedback.FeedbackBuilder`
turns the journal rows since the previous feedback into the next batch's context, logged as an
IN record before the batch. :class:`FeedbackLoop` runs exactly those classes in exactly that
order for the backtest. Outcomes and ClOrdIDs name a signal by its batch seq and its position
among that batch's signals, never by log index, so nothing the strategy is told depends on
where a live run's clock records (logged at wall-clock moments) land. The loop still counts
log indices as a live log without clock records would (the boot record, the start control
record, then per batch its feedback record if any, its IN and its OUT record): they only
locate records (:attr:`LoggedRecord.index`, the journal's ``log_index``). The strategy gets
each context as the enclave hands it over: decoded from its one encoding (on the fast
path, the equal value the builder made: :meth:`FeedbackLoop.before` says why).

So a backtest, a live run on the paper venue (clock records and all) and a replay of its log
give the same feedback bodies, the same batch bodies and the same signals, byte for byte, in
the same order, and the same journal rows but for their wall-clock ``time_ns`` and the
``log_index`` locator (tests/e2e/test_feedback_parity.py). The order-rate limit counts orders
per second of event time (the batch's newest event), the one clock both sides share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl

from zcbench.strategy import Context, decode_context, decode_signals, encode_context

if TYPE_CHECKING:
    from zcbench.host.execution import ExecutionLayer, RiskLimits, Venue
    from zcbench.risk import BuyingPower
    from zcbench.strategy import Signal
    from zcbench.venue import Cancel, Execution, Order, Replace

__all__ = ["FeedbackLoop", "LoggedRecord"]

_SURE_OUTCOMES: Final = 1_000
"""Outcomes a context may hold and still surely encode within the decoder's 64 MiB: each of
its texts is at most 256 characters (1 KiB of UTF-8), so 1,000 outcomes and the 10,000
positions a context may hold stay under 20 MiB."""

BOOT_RECORDS: Final = 2
"""Records before the first batch's in a run's log: the boot record and the control record
that puts the run's limits in force (in a run without clock records; with them, later
indices shift, and only locators depend on them; DESIGN.md, "The live run")."""


@dataclass(frozen=True, slots=True)
class LoggedRecord:
    """An IN or OUT record the run's log holds for a backtest batch: its ``index`` in the log,
    ``kind`` (``in`` for a feedback body or a batch, ``out`` for signals), ``seq`` and
    ``body`` (the record's bytes, as :mod:`zcbench.auditlog` stores them)."""

    index: int
    kind: str
    seq: int
    body: bytes


class _Stamped:
    """A venue whose executions' event times are noted by ExecID (what the journal rows do
    not carry: their ``time_ns`` is the act's), for the backtest's accounting; the rest of the
    venue (``resting``, ``open_orders``) is reached through it unchanged."""

    def __init__(self, venue: Venue) -> None:
        self._venue = venue
        self.name = venue.name
        self.event_ts: dict[str, int] = {}

    def _note(self, reports: Sequence[Execution]) -> Sequence[Execution]:
        for e in reports:
            if e.exec_type == "trade":
                self.event_ts[e.exec_id] = e.ts
        return reports

    def on_market(self, events: pl.DataFrame) -> Sequence[Execution]:
        return self._note(self._venue.on_market(events))

    def submit(self, order: Order) -> Sequence[Execution]:
        return self._note(self._venue.submit(order))

    def cancel(self, request: Cancel) -> Sequence[Execution]:
        return self._note(self._venue.cancel(request))

    def replace(self, request: Replace) -> Sequence[Execution]:
        return self._note(self._venue.replace(request))

    def close(self) -> None:
        self._venue.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)


class FeedbackLoop:
    """One backtest's execution layer, venue and feedback, driven batch by batch.

    Per batch: :meth:`before` (the context to hand the strategy, or None), then :meth:`after`
    with the batch's encoded signals and market events; :meth:`finish` after the last batch
    signs what came of it. ``keep_records`` keeps every record body (:attr:`records`);
    ``order_prefix`` names orders as a live run's id does; ``first_index`` is the first
    batch's log index (after the boot and start control records); ``capital``,
    ``buying_power`` and ``units`` bind capital as a live run's do (:class:`ExecutionLayer`),
    and ``units`` (the account's, ``Instruments.account``) make its cash and PnL a live run's;
    ``fee`` is charged on every fill (``ExecutionLayer.fee``) and ``lots`` bind
    (``ExecutionLayer.lots``). ``stamp`` notes, for
    :meth:`ledger_journal`, each journal row's batch and each fill's event time.
    """

    def __init__(
        self,
        *,
        limits: RiskLimits | None = None,
        venue: Venue | None = None,
        order_prefix: str = "bt",
        first_index: int = BOOT_RECORDS,
        keep_records: bool = False,
        capital: int | None = None,
        buying_power: BuyingPower | None = None,
        units: Mapping[str, int] | None = None,
        fee: Callable[[int], int] | None = None,
        lots: Mapping[str, int] | None = None,
        stamp: bool = False,
    ) -> None:
        # the host's classes, imported here: a backtest without feedback never loads them
        from zcbench.host.execution import ExecutionLayer, RiskLimits, VerifiedSignals
        from zcbench.host.feedback import FeedbackBuilder
        from zcbench.risk import BuyingPower
        from zcbench.venue import PaperVenue

        self._verified = VerifiedSignals
        chosen: Venue = venue or PaperVenue()
        self._stamped = _Stamped(chosen) if stamp else None
        self._row_batch: list[int] = []  # with stamp: each journal row's batch

        self.execution: ExecutionLayer = ExecutionLayer(
            limits or RiskLimits(), venue=self._stamped or chosen, order_prefix=order_prefix,
            capital=capital, buying_power=buying_power or BuyingPower(), units=dict(units or {}),
            fee=fee, lots=dict(lots or {}),
        )
        self._builder = FeedbackBuilder(self.execution)
        self._index = first_index
        self._keep = keep_records
        self._market_ns = 0
        self._market = pl.DataFrame()
        self._ts = np.zeros(0, dtype=np.int64)
        self._start = self._end = 0  # market rows not yet handed to the execution layer
        self._wire = False
        self._quiet = False
        self.records: list[LoggedRecord] = []
        self.keeps_records = keep_records
        self.feedback_records = 0

    def before(self, seq: int) -> Context | None:
        """Batch ``seq``'s feedback (what came of the earlier signals since the last), as the
        strategy gets it, or None when nothing happened.

        On the wire path (and whenever the records are kept) the context is encoded, logged
        and decoded as the enclave decodes it. On the fast path it goes to the strategy as the
        builder made it: a :class:`Context` checks at construction everything the decoder
        checks but the encoding's size, so decoding its one encoding gives it back, equal
        (tests/backtest/test_fastpath.py); a context too large to be sure of the size takes
        the wire's way."""
        context = self._builder.take_context(seq)
        if context is None:
            return None
        self.feedback_records += 1
        if self._wire or self._keep or len(context.outcomes) > _SURE_OUTCOMES:
            body = encode_context(context)
            self._log("in", seq, body)
            return decode_context(body, seq=seq)
        self._index += 1
        return context

    def begin(self, market: pl.DataFrame, *, wire: bool = False) -> None:
        """Take the run's market events (the market columns of every batch, in order, sorted
        by ``ts``) before its first batch; :meth:`after` names each batch's end row in them.
        ``wire``: every context goes through its encoding (the per-batch wire path)."""
        self._market = market
        self._ts = market.get_column("ts").to_numpy()
        self._start = self._end = 0
        self._wire = wire
        self._quiet = self.execution.defers_market()

    def after(self, seq: int, signals: bytes, end: int, *, batch: bytes | None = None,
              decoded: Sequence[Signal] | None = None) -> None:
        """Act on batch ``seq``: its market events (the rows up to ``end``, from the previous
        batch's end) reach the execution layer and venue, then its signals (their encoding)
        are placed. ``batch`` is the IN body, kept with the records; ``decoded``, when given,
        is ``decode_signals(signals)`` as the caller already made it (the OUT record decoded
        once).

        A quiet batch (no signals, and :meth:`ExecutionLayer.defers_market`: nothing rests,
        no carried position waits for its mark) changes nothing there: its events would fill
        and expire nothing, and acting on no signals would only set the clock that stamps the
        venue's later reports, which the next act sets again before any can come. So its
        events wait and reach the execution layer with the next batch that is not quiet, as
        one frame, and it is not acted on: the same state and journal, without a frame and a
        call per batch. Only the execution layer changes its quietness, and it is asked again
        after every call it gets."""
        if self._keep:
            if batch is None:
                raise ValueError("keep_records needs each batch's IN body")
            self._log("in", seq, batch)
            self._log("out", seq, signals)
        else:
            self._index += 2
        self._end = end
        if decoded is None:
            decoded = decode_signals(signals)
        if self._quiet and not decoded:
            return
        self._market_ns = int(self._ts[end - 1])  # sorted: the batch's newest event
        self._flush()
        out_index = self._index - 1
        verified = self._verified(seq, out_index, out_index + 1, tuple(decoded))
        self.execution.act(verified, now_ns=self._market_ns, market_ns=self._market_ns)
        self._quiet = self.execution.defers_market()
        self._note_rows(seq)

    def _note_rows(self, seq: int) -> None:
        """With ``stamp``: the journal rows written since the last note are batch ``seq``'s."""
        if self._stamped is not None:
            missing = self.execution.journal_rows() - len(self._row_batch)
            self._row_batch.extend([seq] * missing)

    def _flush(self) -> None:
        """Hand the execution layer the market events that waited (one frame)."""
        if self._end > self._start:
            self.execution.on_market(self._market.slice(self._start, self._end - self._start),
                                     now_ns=self._market_ns)
            self._start = self._end

    def finish(self, seq: int) -> None:
        """After the last batch (``seq`` the count of batches): its outcomes, signed too."""
        self._flush()
        self._note_rows(max(seq - 1, 0))
        self.before(seq)

    def journal(self) -> pl.DataFrame:
        """The journal rows, as a live run's ``journal.jsonl`` holds them (``time_ns`` is event
        time here, wall-clock time there)."""
        return self.execution.journal()

    def ledger_journal(self) -> pl.DataFrame:
        """:meth:`journal` with ``batch`` (the batch during whose turn each row was written:
        the market events up to its end, then its signals) and ``event_ts`` (a fill's event
        time at the venue; null on other rows): what the backtest's accounting takes
        (``zcbench.backtest._accounting.book_executions``). Needs ``stamp``."""
        if self._stamped is None:
            raise ValueError("ledger_journal needs a FeedbackLoop made with stamp=True")
        ts = self._stamped.event_ts
        journal = self.journal()
        return journal.with_columns(
            pl.Series("batch", self._row_batch, dtype=pl.Int64),
            pl.Series("event_ts", [ts.get(e) for e in journal.get_column("exec_id").to_list()],
                      dtype=pl.Int64),
        )

    def positions(self) -> dict[str, Any]:
        """The positions now, per symbol (zero positions left out)."""
        return {s: q for s, q in sorted(self.execution.positions.items()) if q}

    def _log(self, kind: str, seq: int, body: bytes) -> None:
        if self._keep:
            self.records.append(LoggedRecord(self._index, kind, seq, body))
        self._index += 1
