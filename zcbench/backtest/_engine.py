"""Event-driven replay of batches through a Strategy, on the enclave's own code path.

Batches reach the strategy through the wire codec and ``apply_strategy``, and every batch's
signals go ``encode_signals -> decode_signals``, exactly as they cross the enclave boundary in a
live run, so a strategy cannot see anything different in a backtest than it will see live.

Two ways through the codec, one engine: ``wire`` encodes and decodes every batch on its own as
the proxy and the enclave do; ``fast`` (the default) checks once, for the whole stream, what the
decoder would refuse, and hands the strategy each batch as a zero-copy slice of the stream, since
the codec is the identity on such frames (:mod:`zcbench.strategy._bulk` says why, and the tests
prove it). Only the source of batches differs; the loop, the signals codec, the digest and the
accounting are shared, and the tests hold the two paths to the same batches, signals, digest and
fills on every example and on random streams. The canonical
signals digest is SHA-256 over, for each batch in order, its ``seq`` and the length of its
encoded signals (8-byte big-endian each) and those encoded signals: two runs agree on it exactly
when they produced the same signals on the same batches.

One fill model per run, chosen by the strategy:

- **the venue model**, for a strategy that takes the feedback context
  (:func:`zcbench.strategy.takes_context`): its signals go through the live run's closed loop
  (:class:`~zcbench.backtest._loop.FeedbackLoop`: the execution layer's risk limits and
  buying power, the paper venue's resting orders and partial fills against quoted size), and
  every table is counted from that loop's journal
  (:func:`~zcbench.backtest._accounting.book_executions`): a fill row of the journal is a fill
  of the tables, at its price, the configured fee charged on it (by the execution layer too,
  so its buying-power check and PnL count it); equity marks by
  :func:`zcbench.marketdata.marks` after each batch. So the tables say what the strategy was
  told, and a live run on the paper venue over the same data reports the same PnL (without
  fees, which a live run does not charge). Slippage is not modelled by the venue: a non-zero
  ``slippage_ticks`` is refused. Lot sizes bind in the execution layer (``lot_size``), live
  too.
- **the next-event model**, for a strategy that takes batches only: the vectorised
  :func:`~zcbench.backtest._accounting.book` (the next event of the symbol after the batch,
  slippage, lot sizes, the same buying-power rule). It is *not* the venue's model: the venue
  fills a market order at once against the last event it saw (a bar's close, a quote's side,
  a trade's price), this one at the next event, unbounded by size; so such a strategy's
  backtest can differ from its live run on the paper venue. It stays for speed and because
  its tests pin slippage and lot sizes, which the venue model lacks; moving it onto the venue
  is the next step.

Both feed one accountant (``_accounting._Books``: cash, average cost, realised PnL, round
trips, the equity curve) and the same metrics.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from zcbench.backtest._accounting import FillModel, book, book_executions
from zcbench.backtest._loop import FeedbackLoop, LoggedRecord
from zcbench.backtest._metrics import METRICS_SCHEMA, benchmark, compute_metrics
from zcbench.errors import DataError, EnvError, UsageError, describe_os_error
from zcbench.marketdata import (
    Account,
    BatchSpec,
    Instruments,
    batch_ends,
    check_ticks,
    default_instruments,
    normalise_events,
    validate_events,
)
from zcbench.money import ticks_of
from zcbench.progress import progress
from zcbench.risk import BuyingPower
from zcbench.strategy import (
    PRICE_SCALE,
    Batch,
    Signal,
    Strategy,
    StrategyError,
    apply_strategy,
    decode_batch,
    decode_signals,
    encode_batch,
    encode_signals,
    select_fields,
    takes_context,
)
from zcbench.strategy._bulk import wire_view
from zcbench.venue import MARKET_COLUMNS

__all__ = [
    "BacktestConfig",
    "BacktestLog",
    "BacktestResult",
    "PreparedData",
    "backtest_log",
    "prepare",
    "replay",
    "run_backtest",
    "run_prepared",
]

FAST: Final = "fast"
WIRE: Final = "wire"
PATHS: Final = (FAST, WIRE)

_SIGNAL_SCHEMA = {
    "seq": pl.Int64,
    "idx": pl.Int64,
    "symbol": pl.String,
    "side": pl.String,
    "quantity": pl.Int64,
    "limit_price": pl.Int64,
    "hints": pl.String,
    "end_row": pl.Int64,
}


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """Batching, fills and capital for one backtest.

    Exactly one of ``width_ns`` and ``count`` sets the batching (event time, see
    :mod:`zcbench.marketdata`); ``initial_cash`` is in currency units; ``periods_per_year``
    annualises (None: measured from the batches); ``leverage`` and ``short_margin`` set the
    buying power (:class:`zcbench.risk.BuyingPower`: the defaults are a cash account);
    ``path`` is ``fast`` or ``wire`` (the per-batch codec; the same results, slower);
    ``instruments`` gives tick, lot and currency per symbol (None: the committed defaults).
    """

    width_ns: int | None = None
    count: int | None = None
    slippage_ticks: int = 0
    fee_bps: float = 0.0
    initial_cash: float = 1_000_000.0
    periods_per_year: float | None = None
    path: str = FAST
    leverage: float = 1.0
    short_margin: float = 1.0
    instruments: Instruments | None = None

    def __post_init__(self) -> None:
        BatchSpec(width_ns=self.width_ns, count=self.count)
        if self.path not in PATHS:
            raise UsageError(f"path must be one of {', '.join(PATHS)}, got {self.path!r}")
        FillModel(slippage_ticks=self.slippage_ticks, fee_bps=self.fee_bps)
        BuyingPower(leverage=self.leverage, short_margin=self.short_margin)
        if not (isinstance(self.initial_cash, (int, float)) and 0 < self.initial_cash < 1e11):
            raise UsageError(f"initial_cash must be positive, got {self.initial_cash!r}")

    @property
    def spec(self) -> BatchSpec:
        return BatchSpec(width_ns=self.width_ns, count=self.count)

    @property
    def buying_power(self) -> BuyingPower:
        return BuyingPower(leverage=self.leverage, short_margin=self.short_margin)

    @property
    def fills(self) -> FillModel:
        return FillModel(slippage_ticks=self.slippage_ticks, fee_bps=self.fee_bps)


_CHUNK: Final = 65_536  # batch bounds become Python ints this many at a time


@dataclass(frozen=True, slots=True)
class PreparedData:
    """Events cut into batches, checked once for the wire; reused by every run of a sweep.
    ``ends[i]`` is batch ``i``'s end row (exclusive); ``stream`` is the selected stream in one
    chunk, of which each batch is a slice."""

    events: pl.DataFrame
    fields: tuple[str, ...]
    spec: BatchSpec
    ends: np.ndarray[Any, Any]
    selected: pl.DataFrame
    stream: pl.DataFrame

    @property
    def n_batches(self) -> int:
        return int(self.ends.size)

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """Each batch's ``[start, end)`` rows."""
        return list(self.iter_bounds())

    def iter_ends(self) -> Iterator[int]:
        """Each batch's end row, without a Python int per batch held at once."""
        for k in range(0, self.n_batches, _CHUNK):
            yield from self.ends[k : k + _CHUNK].tolist()

    def iter_bounds(self) -> Iterator[tuple[int, int]]:
        """Each batch's ``[start, end)`` rows, without a Python object per batch held at once."""
        start = 0
        for k in range(0, self.n_batches, _CHUNK):
            for end in self.ends[k : k + _CHUNK].tolist():
                yield start, end
                start = end

    @property
    def wires(self) -> tuple[bytes, ...]:
        """Each batch's wire bytes, as the proxy sends them (the bodies of the IN records)."""
        return tuple(encode_batch(b) for b in self.wire_batches())

    def wire_batches(self) -> Iterator[Batch]:
        """The batches as the proxy cuts them, before the wire (the per-batch path's input)."""
        selected = self.selected
        for seq, (s, e) in enumerate(self.iter_bounds()):
            yield Batch(seq=seq, events=selected.slice(s, e - s))

    def batches(self, path: str = FAST) -> Iterator[Batch]:
        """The batches the strategy sees: views of the decoded stream (``fast``) or each
        encoded and decoded on its own (``wire``, the proxy's and the enclave's path)."""
        if path == WIRE:
            for batch in self.wire_batches():
                yield decode_batch(encode_batch(batch), seq=batch.seq)
            return
        cut = self.stream.slice
        for seq, (s, e) in enumerate(self.iter_bounds()):
            yield Batch(seq, cut(s, e - s))


def prepare(events: pl.DataFrame, fields: Sequence[str], spec: BatchSpec, *,
            ends: np.ndarray[Any, Any] | None = None) -> PreparedData:
    """Validate ``events``, cut them into batches of ``fields`` and check once that the wire
    would carry every batch unchanged (:func:`zcbench.strategy._bulk.wire_view`).

    ``ends``: the batches' end rows as a run logged them (a live feed cuts by arrival, which
    ``spec`` need not reproduce), strictly increasing, the last the number of events; None:
    cut by ``spec``."""
    full = validate_events(normalise_events(events))
    if ends is None:
        ends = batch_ends(full.get_column("ts"), spec)
    else:
        ends = np.asarray(ends, dtype=np.int64)
        if ends.size and (ends[-1] != full.height or ends[0] <= 0
                          or bool(np.any(np.diff(ends) <= 0))):
            raise UsageError(f"backtest: batch ends must rise strictly to {full.height}, the "
                             "number of events")
    if not ends.size:
        raise UsageError("backtest: no events to replay")
    selected = select_fields(full, fields)
    stream = wire_view(selected, ends)
    return PreparedData(full, tuple(fields), spec, ends, selected, stream)


class _EmptyRuns:
    """Feeds the digest the entries of batches without signals a run at a time: each is
    ``seq || len(empty) || empty`` (8-byte big-endian), built for a whole run with numpy."""

    def __init__(self, digest: Any) -> None:
        self._digest = digest
        empty = encode_signals([])
        self._dtype = np.dtype([("seq", ">u8"), ("tail", f"V{8 + len(empty)}")])
        self._tail = np.frombuffer(len(empty).to_bytes(8, "big") + empty, dtype=self._dtype[1])
        self._next = 0  # the first batch not yet in the digest

    def flush(self, upto: int) -> None:
        """Add batches ``next .. upto - 1`` (all without signals), then skip batch ``upto``."""
        for start in range(self._next, upto, _CHUNK):
            stop = min(start + _CHUNK, upto)
            entries = np.empty(stop - start, dtype=self._dtype)
            entries["seq"] = np.arange(start, stop, dtype=np.uint64)
            entries["tail"] = self._tail[0]
            self._digest.update(entries.tobytes())
        self._next = upto + 1


_NAMED: Final = ("ts", "symbol", "kind")


def _market_columns(events: pl.DataFrame) -> pl.DataFrame:
    """What the proxy hands the execution layer (the market columns), selected once for the
    run, without the columns no event of the run fills (a bar stream's trade and quote
    fields): the execution layer and the venue read a column the frame lacks as null on every
    row (:func:`zcbench.marketdata.last_marks`, the venue's liquidity), so they act the same,
    and every order's turn no longer walks them."""
    height = events.height
    return events.select([
        c for c in MARKET_COLUMNS
        if c in events.columns and (c in _NAMED or events.get_column(c).null_count() < height)
    ])


def _replay(
    strategy: Strategy,
    data: PreparedData,
    path: str,
    show_progress: bool | None,
    loop: FeedbackLoop | None = None,
) -> tuple[dict[int, list[Signal]], str]:
    """The batches that gave signals (by ``seq``), as they come out of the boundary, and the
    signals digest over every batch. With ``loop``, each batch gets its feedback first and its
    signals are acted on after it, as in a live run with feedback."""
    if path not in PATHS:
        raise UsageError(f"backtest path must be one of {', '.join(PATHS)}, got {path!r}")
    digest = hashlib.sha256()
    empties = _EmptyRuns(digest)
    out: dict[int, list[Signal]] = {}
    source: Iterator[Batch] = data.batches(path)
    if show_progress is not False:
        source = progress(source, total=data.n_batches, desc="backtest", enabled=show_progress)
    wires = data.wire_batches() if loop is not None and loop.keeps_records else None
    before = after = None
    if loop is not None:
        loop.begin(_market_columns(data.events), wire=path == WIRE)
        before, after = loop.before, loop.after
    none = encode_signals([])
    seq = -1
    try:
        for batch, end in zip(source, data.iter_ends(), strict=True):
            seq = batch.seq
            signals = apply_strategy(strategy, batch, before(seq) if before is not None else None)
            if signals:
                blob = encode_signals(signals)
                empties.flush(seq)
                digest.update(seq.to_bytes(8, "big") + len(blob).to_bytes(8, "big") + blob)
                # decoded once, as the enclave's OUT record is: the loop acts on this decoding
                decoded = out[seq] = decode_signals(blob)
            else:
                blob, decoded = none, []
            if after is not None:
                wire = encode_batch(next(wires)) if wires is not None else None
                after(seq, blob, end, batch=wire, decoded=decoded)
        empties.flush(seq + 1)
        if loop is not None:
            loop.finish(seq + 1)
    except StrategyError as exc:
        end = int(data.ends[seq])
        start = int(data.ends[seq - 1]) if seq > 0 else 0
        ts = data.events.get_column("ts")
        raise StrategyError(
            f"{exc}: batch {seq} holds {end - start} events from ts {ts[start]} to "
            f"{ts[end - 1]} (rows {start + 1}..{end}); the backtest stopped there",
            seq=exc.seq,
        ) from exc.__cause__
    return out, digest.hexdigest()


def replay(
    strategy: Strategy,
    data: PreparedData,
    *,
    path: str = FAST,
    show_progress: bool | None = False,
) -> tuple[list[list[Signal]], str]:
    """Each batch's signals, as they come out of the boundary, and the signals digest.

    ``path`` chooses how batches reach the strategy (see :meth:`PreparedData.batches`); the
    rest is one loop. Signals always go through the signals codec, and the digest is over their
    encoding, exactly as the enclave's OUT records hold them.
    """
    sparse, digest = _replay(strategy, data, path, show_progress)
    return [sparse.get(seq, []) for seq in range(data.n_batches)], digest


def _signal_frame(sparse: dict[int, list[Signal]], ends: np.ndarray[Any, Any]) -> pl.DataFrame:
    rows = [
        {
            "seq": seq,
            "idx": idx,
            "symbol": s.symbol,
            "side": s.side,
            "quantity": s.quantity,
            "limit_price": s.limit_price,
            "hints": json.dumps([list(h) for h in s.hints]),
            "end_row": int(ends[seq]),
        }
        for seq, signals in sorted(sparse.items())
        for idx, s in enumerate(signals)
    ]
    return pl.DataFrame(rows, schema=_SIGNAL_SCHEMA)


@dataclass(frozen=True)
class BacktestResult:
    """Everything one backtest produced; money columns are integer ticks unless named ``_ccy``.

    - ``signals``: one row per signal (``seq`` of its batch, ``idx`` within the batch);
    - ``fills``: one row per signal turned order, with ``status`` and the fill if any;
      (``refused`` with the buying-power rule's name in ``reason`` when capital did not allow it);
    - ``positions``: position, average cost and realised PnL after each fill;
    - ``trades``: the round trips (entry, exit, quantity, PnL with fees, return, duration);
    - ``equity``: cash, position value and equity after each batch;
    - ``metrics``: one row, the columns of ``zcbench.backtest.METRIC_NAMES``;
    - ``benchmark``: buy and hold per symbol (``total_return``, ``cagr``).

    A strategy that takes the feedback context also gets ``journal``: the orders, reports and
    fills of the closed loop that fed it (the live journal's rows), and every table above is
    counted from it (the venue model, module docstring): ``fills`` has one row per signal with
    ``status`` ``filled``, ``partially_filled`` (``reason`` says how the rest ended:
    ``cancelled: ...``, ``expired: ...``, ``resting``), ``cancelled``, ``expired``, ``resting``
    (open at the end) or ``refused`` (``reason``: the risk limit or rule, ``venue``), with
    ``filled_quantity``, the average ``fill_price`` (floored to a tick unit), the exact
    ``notional`` and ``fee``, the time of the last fill and the cash after it (``fill_row``:
    the last row of the batch it last filled in); ``positions`` one row per fill; metrics count
    fills (``n_fills``) as the journal's fill rows. A strategy that takes batches only is
    filled by the next-event model (``status`` ``filled``, ``refused``, ``no_next_event``,
    ``limit_not_reached``).

    Money: integer columns are in the account's smallest unit (``money_scale`` of them make one
    unit of ``currency``); float money columns and every money metric are in ``currency``.
    """

    strategy: str
    params: dict[str, Any]
    config: BacktestConfig
    n_events: int
    signals_digest: str
    signals: pl.DataFrame
    fills: pl.DataFrame
    positions: pl.DataFrame
    equity: pl.DataFrame
    metrics: pl.DataFrame
    trades: pl.DataFrame
    benchmark: dict[str, dict[str, float | None]]
    currency: str = "USD"
    money_scale: int = PRICE_SCALE
    journal: pl.DataFrame | None = None

    def metrics_dict(self) -> dict[str, float | int | None]:
        """The metrics row as a plain map."""
        row: dict[str, float | int | None] = self.metrics.row(0, named=True)
        return row

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary: strategy, parameters, batching, digest and metrics, with the
        currency and ``money_scale`` (how many units of the tables' integer money columns make
        one currency unit)."""
        return {
            "strategy": self.strategy,
            "params": self.params,
            "config": dataclasses.asdict(self.config),
            "n_events": self.n_events,
            "signals_digest": self.signals_digest,
            "currency": self.currency,
            "money_scale": self.money_scale,  # integer money columns: units of 1/money_scale
            "metrics": self.metrics_dict(),
            "benchmark": self.benchmark,
            "trades": self.trades.height,
        }

    def write(self, out_dir: str | Path, *, plot: bool = False) -> Path:
        """Write ``summary.json`` and one parquet file per table (``journal`` when there is one)
        into ``out_dir`` (and, with
        ``plot``, ``equity.png``: equity, drawdown and trades)."""
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
            if plot:
                from zcbench.backtest._plot import equity_png

                (out / "equity.png").write_bytes(equity_png(self))
            for name in ("signals", "fills", "positions", "trades", "equity", "metrics", "journal"):
                frame: pl.DataFrame | None = getattr(self, name)
                if frame is not None:  # no journal: the strategy took no feedback
                    frame.write_parquet(out / f"{name}.parquet", statistics=False)
            text = json.dumps(self.summary(), indent=2, sort_keys=True)
            (out / "summary.json").write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise EnvError(
                f"the backtest result: {describe_os_error(exc, writing=True)}"
            ) from None
        return out


def _account(events: pl.DataFrame, instruments: Instruments | None) -> Account:
    """The account's currency and unit of money from the instruments of ``events`` in
    ``instruments`` (None: the committed defaults), checking every price against its tick
    (:meth:`~zcbench.marketdata.Instruments.account`: the finest price unit among them, so
    every notional is exact; a live run's account is made the same way). The one way both
    :func:`run_prepared` and :func:`backtest_log` make theirs."""
    table = instruments if instruments is not None else default_instruments()
    symbols = events.get_column("symbol").unique().sort().to_list()
    for symbol in symbols:
        if table.of(symbol) is None:
            raise UsageError(f"backtest: unknown instrument {symbol!r}: not in {table.source}")
    try:
        account = table.account(symbols)
    except DataError as exc:
        raise UsageError(f"backtest: {exc}") from None
    check_ticks(events, table)
    return account


@dataclass(frozen=True)
class BacktestLog:
    """What a live run's log and journal hold for a backtest run with feedback: every IN
    (feedback and batch) and OUT record body with its log index, in log order; the journal
    rows (:data:`zcbench.host.execution.JOURNAL_SCHEMA`, ``time_ns`` in event time); the
    positions at the end; the signals digest; and the PnL in the account a live run over the
    same data counts in (its instruments', :meth:`Instruments.account`)."""

    records: tuple[LoggedRecord, ...]
    journal: pl.DataFrame
    positions: dict[str, int]
    signals_digest: str
    pnl: int = 0
    """The execution layer's PnL at the end, in ``account``'s unit (a live run's
    ``pnl_ticks`` over the same data)."""
    account: Account = dataclasses.field(default_factory=Account)


def backtest_log(
    strategy: Strategy,
    data: PreparedData,
    *,
    limits: Any = None,
    venue: Any = None,
    order_prefix: str = "bt",
    path: str = FAST,
    capital: int | None = None,
    buying_power: BuyingPower | None = None,
    units: dict[str, int] | None = None,
    instruments: Instruments | None = None,
) -> BacktestLog:
    """Run ``strategy`` over ``data`` through the live run's closed loop (the execution layer
    under ``limits``, a ``zcbench.host.execution.RiskLimits``, default its defaults, and with
    ``capital`` under ``buying_power`` in the unit ``units`` define, as ``run_live`` takes
    them; ``venue``,
    default a fresh :class:`zcbench.venue.PaperVenue`; the feedback records) and return the
    records and journal a live run over the same data would write (orders named after
    ``order_prefix``, as a live run names them after its run id). The account (its currency,
    unit of money and ``units``) comes from ``instruments`` (None: the committed defaults)
    exactly as :func:`run_prepared`'s comes from ``BacktestConfig.instruments``."""
    account = _account(data.events, instruments)
    loop = FeedbackLoop(limits=limits, venue=venue, order_prefix=order_prefix, keep_records=True,
                        capital=capital, buying_power=buying_power,
                        units=account.units if units is None else units, lots=account.lots)
    _, digest = _replay(strategy, data, path, False, loop)
    return BacktestLog(tuple(loop.records), loop.journal(), loop.positions(), digest,
                       loop.execution.pnl(), account)


def run_prepared(
    strategy: Strategy,
    data: PreparedData,
    config: BacktestConfig,
    *,
    show_progress: bool | None = False,
    limits: Any = None,
    account: Account | None = None,
) -> BacktestResult:
    """Replay prepared batches through ``strategy`` and account for its signals.

    A strategy that takes the feedback context (:func:`zcbench.strategy.takes_context`) runs
    through the live run's closed loop (:class:`~zcbench.backtest._loop.FeedbackLoop`: the
    execution layer under ``limits``, the paper venue, a context before each batch), so it sees
    what it would see live; its journal is :attr:`BacktestResult.journal`, and its tables are
    counted from that journal (the venue model, module docstring); any other strategy's from
    the next-event model. ``account``: the money to count in (a logged run's own,
    :func:`zcbench.host.summary.run_account`); None: made from ``config.instruments``."""
    if account is None:
        account = _account(data.events, config.instruments)
    initial = ticks_of(config.initial_cash, scale=account.money_scale)
    model = config.fills
    loop = None
    if takes_context(strategy):
        if config.slippage_ticks:
            raise UsageError(
                f"slippage_ticks={config.slippage_ticks}: strategy {strategy.name!r} takes the "
                "feedback context, so it fills on the paper venue, at the prices its market "
                "data quotes (as a live run does); set slippage_ticks to 0"
            )
        loop = FeedbackLoop(limits=limits, capital=initial, buying_power=config.buying_power,
                            units=account.units, fee=model.fee_of(), lots=account.lots,
                            stamp=True)
    sparse, digest = _replay(strategy, data, config.path, show_progress, loop)
    signals = _signal_frame(sparse, data.ends)
    if loop is not None:
        journal = loop.ledger_journal()
        loop = None  # its journal rows (a dict each) go now: the frame holds them
        ledger = book_executions(
            data.events, signals, journal, data.ends, model, initial,
            units=account.units, money_scale=account.money_scale,
        )
        n_fills = int((journal.get_column("event") == "fill").sum())
    else:
        journal = None
        ledger = book(
            data.events,
            signals,
            data.ends,
            model,
            initial,
            buying_power=config.buying_power,
            units=account.units,
            ticks=account.ticks,
            lots=account.lots,
            money_scale=account.money_scale,
        )
        n_fills = int((ledger.fills.get_column("status") == "filled").sum())
    status = ledger.fills.get_column("status")
    metrics = compute_metrics(
        equity=ledger.equity.get_column("equity").to_numpy(),
        end_ts=ledger.equity.get_column("ts").to_numpy(),
        initial=initial,
        traded_notional=ledger.traded_notional,
        fees=ledger.fees,
        closing_pnls=ledger.closing_pnls,
        trade_pnls=ledger.trades.get_column("pnl").to_numpy(),
        exposure=ledger.exposure,
        n_signals=signals.height,
        n_fills=n_fills,
        n_refused=int((status == "refused").sum()),
        periods_per_year=config.periods_per_year,
        money_scale=account.money_scale,
    )
    return BacktestResult(
        strategy=strategy.name,
        params=dataclasses.asdict(strategy.params),
        config=config,
        n_events=data.events.height,
        signals_digest=digest,
        signals=signals.drop("end_row"),
        fills=ledger.fills,
        positions=ledger.positions,
        equity=ledger.equity,
        metrics=pl.DataFrame([metrics], schema=METRICS_SCHEMA),
        trades=ledger.trades,
        benchmark=benchmark(data.events.get_column("ts").to_numpy(), ledger.marks),
        currency=account.currency,
        money_scale=account.money_scale,
        journal=journal.drop("batch", "event_ts") if journal is not None else None,
    )


def run_backtest(
    strategy: Strategy,
    events: pl.DataFrame,
    config: BacktestConfig,
    *,
    show_progress: bool | None = False,
) -> BacktestResult:
    """Backtest ``strategy`` on ``events`` (any frame in the event schema, sorted by ``ts``).

    ``show_progress``: a progress bar over the batches (None: only on a terminal).
    """
    data = prepare(events, strategy.fields(), config.spec)
    return run_prepared(strategy, data, config, show_progress=show_progress)
