"""The live runner: proxy → enclave → durable, verified log → execution, pipelined.

:func:`run_live` opens an enclave session (:mod:`zcbench.host.session`, shared with replays:
the local process by default, any :class:`~zcbench.host.launcher.EnclaveProcess` otherwise;
new run id, new log key, boot document verified against the image's PCRs
(:mod:`zcbench.host.images`) under the named trust root; a sealed build's key release relayed to
the key broker), then streams the proxy's batches through it. One thread
sends ``ingest`` frames up to ``window`` batches ahead; the calling thread takes the replies in
order, rebuilds and checks each batch's records (:class:`~zcbench.host.logwriter.HostLog`),
stores each group of replies already waiting, fsyncs, verifies the newest checkpoint and fsyncs
it (group commit), and only then lets the execution layer act. So the host writes and verifies
batch k while the enclave computes batch k+1. With ``log_writer="process"`` the storing and
checking run in a writer process instead: the calling thread hands it each group and acts on a
batch only once the writer reports it durable, receiving the next replies meanwhile. A
:class:`RunHandle` lets other threads ask for attestations or stop.

Whatever happens (source exhausted, enclave killed, strategy exception, a bad frame, a failed
check), the run closes the same way: kill switch on, no further orders, the enclave shut down or
killed, and the run folder written: ``log/``, ``boot.cbor``, ``journal.jsonl`` (durable as it
goes: each batch's orders are fsynced before the next batch is acted on), ``summary.json``
(:mod:`zcbench.host.summary`: run id, origin, image, counts, freshness, network isolation, how it
ended). Batches the proxy dropped are logged as note records, in order with the batches; Ctrl-C
and SIGTERM end a run as ``interrupted`` the same way. A run that fails before it starts (the
enclave does not launch or boot) leaves the folder as it found it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import queue
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from zcbench.auditlog._fs import FileSystem
from zcbench.channel import ChannelClosed, Connection, FrameError, Message
from zcbench.errors import DataError, EnvError, UsageError, VerificationError, ZcbenchError
from zcbench.host._boot import ledger_exchange
from zcbench.host._stats import LatencyRecorder
from zcbench.host.controls import ControlRecord, apply_control, encode_control, limits_of
from zcbench.host.execution import JOURNAL_FILE, ExecutionLayer, Journal, RiskLimits, Venue
from zcbench.host.feedback import FeedbackBuilder
from zcbench.host.images import BuildImage, EnclaveImage, ModuleImage
from zcbench.host.launcher import EnclaveProcess
from zcbench.host.logwriter import HostLog
from zcbench.host.options import new_run_id
from zcbench.host.proxy import LiveSource, MarketDataProxy, ProxyBatch, ReplaySource
from zcbench.host.session import open_session
from zcbench.host.summary import RunProgress, RunSummary, write_summary
from zcbench.marketdata import Account
from zcbench.risk import BuyingPower
from zcbench.strategy import encode_signals

if TYPE_CHECKING:
    from zcbench.evidence.clock import ClockSource
    from zcbench.host.restart import Continuation
    from zcbench.keys import KeyBroker

__all__ = [
    "BuildImage",
    "EnclaveImage",
    "ModuleImage",
    "RunHandle",
    "RunLedger",
    "RunProgress",
    "RunSummary",
    "run_live",
]

_DONE: Final = object()
_MAX_GROUP: Final = 64
_MAX_PENDING: Final = 1_024  # batches handed to the log writer and not yet acted on
_WRITERS: Final = ("process", "thread", "inline")
_PRICE_EVERY: Final = 256
_STREAM_WAIT_S: Final = 0.002  # how long a quiet group waits for the sender's next batch
_NO_SIGNALS: Final = encode_signals([])


class RunHandle:
    """A running live run, for callers on other threads (widgets, the demo, tests).

    ``attest(nonce)`` asks the enclave for a fresh attestation document carrying the caller's
    nonce and, in ``user_data``, the latest signed checkpoint; it is answered in order with the
    batches in flight. ``stop()`` ends the run cleanly.
    """

    def __init__(self, run_id: str, origin: str, enclave: EnclaveProcess, pipe: _Pipeline) -> None:
        self.run_id = run_id
        self.origin = origin
        self.enclave = enclave
        self._pipe = pipe

    @property
    def log_writer_pid(self) -> int | None:
        """The log writer process's id (None when the log is written in this process)."""
        writer = self._pipe.log.writer
        return getattr(writer, "pid", None)

    def attest(self, nonce: bytes, *, timeout: float = 30.0) -> bytes:
        """A fresh attestation document from the running enclave (not verified here)."""
        if not nonce:
            raise UsageError("attest needs a non-empty nonce")
        return self._pipe.attest(nonce, timeout)

    def stop(self) -> None:
        """End the run after the batches in flight (status ``stopped``)."""
        self._pipe.user_stop.set()

    def control(self, action: str, *, operator: str, values: Mapping[str, int] | None = None,
                reason: str = "", timeout: float = 30.0) -> tuple[int, dict[str, int]]:
        """Change the run's limits (``set`` with ``values``), engage (``kill``) or release
        (``enable``) its kill switch, as ``operator``: logged as a control record
        (:mod:`zcbench.host.controls`) and in force from the next batch acted on once that
        record is durable. Returns the record's log index and the limits now in force."""
        return self._pipe.control(action, operator, values, reason, timeout)


@dataclass
class _Note:
    """A note record in flight (batches the proxy dropped, a clock reading), logged in order
    with the batches."""

    body: bytes
    clock: bool = False


@dataclass
class _Snapshot:
    """A strategy snapshot asked of the enclave, taken in order with the batches."""


@dataclass
class _LedgerAsk:
    """A run-checkpoint asked of the enclave's ledger, answered in order with the batches."""


@dataclass
class _Feedback:
    """A feedback IN record in flight, logged just before batch ``seq``."""

    seq: int
    body: bytes


@dataclass
class _Control:
    """A control record in flight: the limits it puts in force once it is durable."""

    body: bytes
    limits: RiskLimits
    reason: str
    record: ControlRecord | None = None
    done: threading.Event = field(default_factory=threading.Event)
    index: int | None = None
    error: str | None = None


@dataclass
class _Attest:
    nonce: bytes
    done: threading.Event = field(default_factory=threading.Event)
    document: bytes | None = None
    error: str | None = None


class _RunFailed(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _prepare_run_dir(run_dir: Path) -> bool:
    """Make ``run_dir`` (or take it empty); True when this call created it."""
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(f"run folder {run_dir} is not empty; give a new folder for a new run")
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    return created


def _discard_unstarted(run_dir: Path, created: bool) -> None:
    """A run that failed before it started acted on nothing: leave no debris that would block
    a retry into the same folder (the error already says why; the folder was empty)."""
    import shutil

    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for entry in list(run_dir.iterdir()) if run_dir.is_dir() else []:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _account_of(source: ReplaySource | LiveSource) -> Account:
    """A source's own account when it holds its events (a replayed recording), else the
    schema's unit (1/10,000 of the default currency)."""
    if isinstance(source, ReplaySource):
        from zcbench.host.sources import account_of

        return account_of(source.events)
    return Account()


def run_live(
    image: EnclaveImage,
    run_dir: Path,
    source: ReplaySource | LiveSource,
    *,
    limits: RiskLimits | None = None,
    capital: int | None = None,
    buying_power: BuyingPower | None = None,
    trust: str = "dev",
    window: int = 64,
    queue_size: int = 64,
    max_delay_s: float = 0.05,
    queue_hold: int = 1,
    reply_timeout: float = 30.0,
    run_id: str | None = None,
    isolate_network: bool | None = None,
    on_progress: Callable[[RunProgress], None] | None = None,
    on_booted: Callable[[RunHandle], None] | None = None,
    final_attest_nonce: bytes | None = None,
    stop: threading.Event | None = None,
    enclave_env: Mapping[str, str] | None = None,
    broker: KeyBroker | None = None,
    launcher: Callable[[Path], EnclaveProcess] | None = None,
    clock: Callable[[], int] = time.time_ns,
    log_fs: FileSystem | None = None,
    venue: Venue | None = None,
    feedback: bool = False,
    ledger: RunLedger | None = None,
    continuation: Continuation | None = None,
    operator: str = "unnamed",
    clock_source: ClockSource | None = None,
    clock_every_s: float | None = 0.25,
    account: Account | None = None,
    snapshot_every_s: float | None = 1.0,
    log_writer: str = "inline",
) -> RunSummary:
    """Run ``image`` live over ``source`` into ``run_dir``; returns the summary (also written).

    ``queue_size`` and ``queue_hold``: a live batch that finds ``queue_size`` batches waiting is
    dropped (and logged); with ``queue_hold`` above 1 only for a sustained backlog, held through a
    momentary stall, always dropped at ``queue_hold * queue_size``
    (:class:`zcbench.host.proxy.Backlog`; the default 1 drops it at once).
    ``capital`` makes capital bind: every order is also held to the ``buying_power`` rule
    (default a cash account), the backtest's rule, counted in ``account``'s unit of money
    (:class:`zcbench.host.ExecutionLayer`; ``Instruments.account``); None: it does not bind.
    ``on_booted`` gets a :class:`RunHandle` once the enclave has booted and its boot document
    verified (to ask for attestations, stop the run, or, in tests, kill the enclave).
    ``final_attest_nonce``: after the last batch, ask for a document with this nonce and write
    it to ``run_dir/attestation.cbor``. Setting ``stop`` ends the run cleanly (status
    ``stopped``). ``enclave_env`` replaces the enclave process's environment. ``broker`` releases a
    build's data key (default: the local key broker in the zcbench home). ``launcher``
    starts the enclave given the run folder (default: the local enclave process for
    ``image``; on Nitro, e.g. ``lambda _: launch_nitro(eif)`` with ``trust="aws"`` and a KMS
    broker). ``venue``: where orders go (``zcbench.venue.PaperVenue``, a ``FixVenue``; None:
    the built-in last-price fills). ``feedback``: before each batch, log the outcomes of the
    strategy's signals since the previous one, its positions and the limits as an IN record and
    hand them to the strategy (``zcbench.host.feedback``); batches then go one at a time (the
    next is sent once the previous one's signals were acted on), so a strategy sees in its
    next batch what became of its last signals. ``ledger``: the strategy's ledger
    (:class:`zcbench.ledger.runs.LedgerRunHook`): right after boot the enclave is handed the
    ledger and appends its run-start (it serves only once its gate passed; a refusal raises
    before anything is served), run-checkpoints are asked for as the run goes and the run-end
    after the summary is written. ``continuation``
    (``zcbench.host.restart.continue_run``): this run continues that one; its boot names the
    previous run's final checkpoint and positions, and its first IN record is the venue's
    state at start, from which the execution layer's positions start.
    ``operator``: who starts the run, named in its
    first control record (the limits in force at the start; later changes go through
    :meth:`RunHandle.control`). ``clock_source`` (default the host's clock with the kernel's
    bound, :class:`zcbench.evidence.HostClock`; on Nitro ``ClockBoundSource``) is read at the
    start, every ``clock_every_s`` and at the end, each reading a clock record in the log
    (:mod:`zcbench.evidence.clock`; None: no clock records, no record's time has a bound).
    ``snapshot_every_s``: for a strategy that keeps snapshots (``snapshot``/``restore``,
    :mod:`zcbench.strategy._snapshot`), the enclave takes, seals and logs one at most this
    often between batches and once after the last batch, and the host writes each sealed
    snapshot to ``run_dir/snapshots/<log index>.sealed`` (durably, before its record is
    stored); a continuing run restores the previous run's newest one right after its start
    state and has its enclave catch up on the batches the previous run logged after it
    (``zcbench.host.restart.catch_up``) (None: no snapshots are taken).
    ``account``: the currency and unit money is counted in (``MarketSource.account``; None:
    a replayed recording's own, from the committed instruments, else the schema's 1/10,000),
    recorded in the journal's header and ``summary.json``. ``log_writer``: where the log's
    writes, fsyncs and checkpoint checks run: ``"inline"`` (on the receiving thread, one group
    at a time; the default, which measured best on a shared 2-core machine, README),
    ``"process"`` (a child process, :meth:`HostLog.use_writer_process`; the next group is
    received and checked while it commits one: for a host with cores to spare, as beside a
    Nitro enclave on its own vCPUs) or ``"thread"`` (the same on a thread of this process); a
    writer that dies or hangs ends the run ``host_error``.
    Raises only for problems before
    the run starts (a missing image, a used run folder, an enclave that does not boot or whose
    boot document does not verify); afterwards every fault ends the run with a summary saying
    how.
    """
    if window < 1:
        raise UsageError("window must be >= 1")
    if log_writer not in _WRITERS:
        raise UsageError(f"log_writer must be one of {', '.join(_WRITERS)}, not {log_writer!r}")
    run_dir = Path(run_dir)
    # a missing image fails here, before anything is made
    image_args = image.launch_args() if launcher is None else []
    created = _prepare_run_dir(run_dir)
    running = False
    run_id = run_id or new_run_id()
    started = time.monotonic()
    try:
        session = open_session(
            image,
            run_dir,
            run_id,
            trust=trust,
            broker=broker,
            launcher=launcher,
            isolate_network=isolate_network,
            enclave_env=enclave_env,
            log_fs=log_fs,
            image_args=image_args,
            previous=continuation.link if continuation is not None else None,
        )
    except BaseException:
        _discard_unstarted(run_dir, created)
        raise
    conn, enclave, log, booted = session.conn, session.enclave, session.log, session.booted
    assert conn is not None
    assert log is not None
    assert booted is not None
    try:
        if log_writer != "inline":
            log.use_writer_process(timeout=reply_timeout, thread=log_writer == "thread")
        if ledger is not None:
            ledger.gate(ledger_exchange(conn, broker, reply_timeout), booted["origin"])
        money = account if account is not None else _account_of(source)
        journal = Journal.create(
            run_dir / JOURNAL_FILE, run_id=run_id, origin=booted["origin"], image=image.describe(),
            continues=str(continuation.end.run_dir.resolve()) if continuation is not None else None,
            account=money,
        )
        execution = ExecutionLayer(
            limits or RiskLimits(), journal, venue=venue, order_prefix=run_id, capital=capital,
            buying_power=buying_power or BuyingPower(), units=dict(money.units),
            lots=dict(money.lots),
        )
        if continuation is not None:
            from zcbench.host.restart import log_start_state

            running = True  # the venue session resumes here: what it sends is kept
            log_start_state(conn, log, execution, continuation, timeout=reply_timeout)
            if booted.fields.get("snapshots"):
                from zcbench.host.restart import catch_up, restore_snapshot

                if restore_snapshot(conn, log, run_dir, continuation,
                                    timeout=reply_timeout) is not None:
                    catch_up(conn, log, run_dir, continuation, timeout=reply_timeout)
        proxy = MarketDataProxy(
            source, booted["fields"], queue_size=queue_size, max_delay_s=max_delay_s,
            hold=queue_hold,
        )
        pipe = _Pipeline(
            conn,
            proxy,
            log,
            execution,
            enclave,
            window,
            reply_timeout,
            clock,
            on_progress,
            stop or threading.Event(),
            FeedbackBuilder(execution) if feedback else None,
            ledger,
        )
        pipe.start_record(operator)
        pipe.clock_source = clock_source
        pipe.account = money
        pipe.clock_every_ns = None if clock_every_s is None else int(clock_every_s * 1e9)
        if booted.fields.get("snapshots") and snapshot_every_s is not None:
            pipe.snapshot_every_ns = int(max(snapshot_every_s, 0.0) * 1e9)
            pipe.run_dir = run_dir
        if on_booted is not None:
            on_booted(RunHandle(run_id, booted["origin"], enclave, pipe))
        running = True
        with _sigterm_interrupts():
            status, reason = pipe.run()
        attestation = None
        if final_attest_nonce is not None and status in ("completed", "stopped"):
            try:
                attestation = _final_attestation(conn, final_attest_nonce)
                (run_dir / "attestation.cbor").write_bytes(attestation)
            except EnvError as exc:
                reason += f"; no final attestation: {exc}"
        unwritten: list[str] = []
        try:
            execution.close()
        except OSError as exc:
            unwritten.append(f"{JOURNAL_FILE} ({exc.strerror or type(exc).__name__})")
        fresh, rtt = pipe.freshness.total, pipe.rtt.total
        stats = proxy.stats()
        elapsed = time.monotonic() - started
        counts = execution.counts()
        state = execution.capital_state()
        summary = RunSummary(
            run_id=run_id,
            origin=booted["origin"],
            status=status,
            reason=_kept(status, reason, pipe, log),
            run_dir=str(run_dir.resolve()),
            image=image.describe(),
            batches=pipe.batches,
            events=pipe.events,
            signals=pipe.signals,
            orders=counts["order"],
            fills=counts["fill"],
            rejects=counts["reject"],
            pnl=execution.pnl(),
            positions=dict(execution.positions),
            log_size=log.durable_size,
            elapsed_s=round(elapsed, 3),
            events_per_s=round(pipe.events / pipe.active_s, 1) if pipe.active_s else 0.0,
            freshness_p50_ms=round(fresh.percentile(50), 3),
            freshness_p99_ms=round(fresh.percentile(99), 3),
            batch_rtt_p50_ms=round(rtt.percentile(50), 3),
            batch_rtt_p99_ms=round(rtt.percentile(99), 3),
            freshness_histogram=fresh.histogram(),
            dropped_batches=stats.dropped_batches,
            dropped_events=stats.dropped_events,
            isolated_network=enclave.isolated_network,
            simulated=trust == "dev",
            trust=trust,
            attestation="attestation.cbor" if attestation is not None else None,
            risk_limits=limits_of(execution.limits),
            currency=money.currency,
            money_scale=money.money_scale,
            units=dict(money.units),
            capital=None if execution.capital is None else {
                "amount": execution.capital, "money_scale": money.money_scale,
                "leverage": execution.buying_power.leverage,
                "short_margin": execution.buying_power.short_margin},
            cash=None if state is None else state.cash,
            equity=None if state is None else state.equity,
            buying_power_used=None if state is None else state.used,
            refusals=execution.refusals(),
        )
        try:
            write_summary(run_dir, summary)
        except OSError as exc:
            unwritten.append(f"summary.json ({exc.strerror or type(exc).__name__})")
        if ledger is not None:
            _end_ledger(ledger, conn, broker, enclave)
        session.shutdown(status)
        if unwritten:
            raise EnvError(
                f"run {run_id} {status}: {reason}; could not write {', '.join(unwritten)}; the "
                f"log in {run_dir / 'log'} holds {log.durable_size} durable records"
            )
        return summary
    finally:
        if ledger is not None:
            ledger.close()
        session.close()
        if not running:
            _discard_unstarted(run_dir, created)


class RunLedger(Protocol):
    """The ledger side of a live run (:class:`zcbench.ledger.runs.LedgerRunHook`)."""

    def gate(self, exchange: Callable[[Message], Message], run_origin: str) -> None: ...

    def due(self) -> bool: ...

    def appended_reply(self, reply: Message) -> None: ...

    def control_reply(self, reply: Message) -> None: ...

    def end(self, exchange: Callable[[Message], Message]) -> None: ...

    def final_checkpoint(self, exchange: Callable[[Message], Message]) -> None: ...

    def close(self) -> None: ...


def _end_ledger(
    ledger: RunLedger, conn: Connection, broker: KeyBroker | None, enclave: EnclaveProcess
) -> None:
    """The run-end, when the enclave is still there to append it (else the run-start stays
    open in the ledger, as after a crash)."""
    if not enclave.alive() or conn.closed_reason is not None:
        return
    with contextlib.suppress(ZcbenchError, TimeoutError):
        ledger.end(ledger_exchange(conn, broker, 30.0))


def _kept(status: str, reason: str, pipe: _Pipeline, log: HostLog) -> str:
    """The reason, and for an interrupted run what was kept."""
    if status != "interrupted":
        return reason
    return (
        f"{reason}; kept: {pipe.batches} batches logged and acted on, the log verified to "
        f"{log.durable_size} records, the journal and this summary"
    )


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends the run like Ctrl-C, when the run is on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _final_attestation(conn: Connection, nonce: bytes) -> bytes:
    try:
        conn.send(Message("attest", {"nonce": nonce}))
        reply = conn.recv(timeout=60)
    except (ZcbenchError, TimeoutError) as exc:
        raise EnvError(f"the enclave did not answer the attestation request: {exc}") from None
    if reply.type != "document":
        raise EnvError(f"the enclave refused to attest: {reply.fields.get('reason', reply.type)}")
    document: bytes = reply["document"]
    return document


class _Pipeline:
    def __init__(
        self,
        conn: Connection,
        proxy: MarketDataProxy,
        log: HostLog,
        execution: ExecutionLayer,
        enclave: EnclaveProcess,
        window: int,
        reply_timeout: float,
        clock: Callable[[], int],
        on_progress: Callable[[RunProgress], None] | None,
        user_stop: threading.Event,
        feedback: FeedbackBuilder | None = None,
        ledger: RunLedger | None = None,
    ) -> None:
        self.ledger = ledger
        self.user_stop = user_stop
        self.feedback = feedback
        self.acted = threading.Condition()
        self.conn = conn
        self.proxy = proxy
        self.log = log
        self.execution = execution
        self.enclave = enclave
        self.reply_timeout = reply_timeout
        self.clock = clock
        self.on_progress = on_progress
        self.inflight: queue.Queue[object] = queue.Queue(window)
        self.stop = threading.Event()
        self.send_error: str | None = None
        self.source_error: str | None = None
        self.batches = self.events = self.signals = 0
        self.freshness = LatencyRecorder()  # newest event at the proxy -> acted on, ns
        self.held: object | None = None
        self.awaiting: collections.deque[ProxyBatch] = collections.deque()  # staged, not acted
        self.order = threading.Lock()  # what goes in flight is sent in the same order
        self.rtt = LatencyRecorder()  # ingest sent -> its signals received, ns
        self.sent_ns: dict[int, int] = {}
        self.active_s = 0.0
        self.t0 = time.monotonic()
        self.market_ns = 0  # the newest event time acted on: the order-rate limit's clock
        # feedback without a needless wait: which batches not yet acted on are known to give no
        # signal (their reply staged), and whether nothing rests at the venue after the last act
        self.silent: dict[int, bool] = {}
        self.quiet = not execution.rests()
        self.loud = False  # the group being staged holds a batch with signals
        self.controls_in_flight = 0  # control records sent, their limits not yet in force
        self.limits_logged = execution.limits  # after every control sent so far (under order)
        self._start: _Control | None = None
        self._start_sent = threading.Event()  # the start record went first (or the run ended)
        self.clock_source: ClockSource | None = None
        self.account = Account()  # the run's money, named in the progress reports
        self.clock_every_ns: int | None = None  # None: no clock records (run_live sets it)
        self._clock_due = 0  # monotonic ns of the next clock record
        self.clock_reply_ns: int | None = None  # when the last clock record's reply came
        self._clock_sent = self._clock_replied = 0  # clock records sent, their replies taken
        self.snapshot_every_ns: int | None = None  # None: the strategy keeps no snapshot
        self.run_dir = Path()
        self._snapshot_due: int | None = None  # monotonic ns of the next one (set at the first)
        self.snapshots_taken = 0

    def _send_snapshot(self, seq: int, *, force: bool = False) -> None:
        """Ask the enclave for the strategy's snapshot when one is due (sender thread, before
        batch ``seq``; ``force``: after the last batch)."""
        now = time.monotonic_ns()
        if self.snapshot_every_ns is None or seq == 0:
            return
        if self._snapshot_due is None:  # the first is due one interval after the first batch
            self._snapshot_due = now + self.snapshot_every_ns
        if not force and now < self._snapshot_due:
            return
        self._snapshot_due = now + self.snapshot_every_ns
        with self.order:
            if self._put(_Snapshot()):
                self.conn.send(Message("snapshot", {}))

    def _take_snapshot(self) -> None:
        """Keep the sealed snapshot beside the run (durably), then store its record."""
        from zcbench.auditlog.snapshots import sealed_snapshot_path
        from zcbench.durable import write_atomically

        reply = self._reply(-1)
        if reply.type != "snapshot_taken":
            code = reply.fields.get("code")
            status = "strategy_failed" if code == "strategy" else "enclave_error"
            raise _RunFailed(status, "the enclave did not take the strategy's snapshot: "
                             f"{reply.fields.get('reason', reply.type)}")
        where = sealed_snapshot_path(self.run_dir, self.log.writer.size)
        try:
            where.parent.mkdir(exist_ok=True)
            write_atomically(where, reply["sealed"], 0o600)
        except OSError as exc:
            raise EnvError(f"cannot write the sealed snapshot {where}: "
                           f"{exc.strerror or type(exc).__name__}") from None
        self.log.stage_note(reply["body"], reply["checkpoint"], time_ns=reply["time_ns"],
                            leaf=reply["leaf"])
        self.log.flush()
        self.snapshots_taken += 1

    def _send_clock(self, *, force: bool = False) -> None:
        """Log a reading of the run's clock source when one is due (sender thread; called
        before every batch, so the common case returns before anything else is done)."""
        now = time.monotonic_ns()
        if self.clock_every_ns is None or (not force and now < self._clock_due):
            return
        if not force and self._clock_replied < self._clock_sent:
            return  # the previous reading's reply is not in yet: its round trip comes first
        from zcbench.evidence.clock import ClockReading, HostClock, encode_clock_note

        self._clock_due = now + self.clock_every_ns
        if force and self._clock_sent:  # the last one: wait for the previous reply (bounded)
            deadline = time.monotonic() + 2.0
            while self._clock_replied < self._clock_sent and time.monotonic() < deadline:
                if self.stop.is_set():
                    return
                time.sleep(0.001)
        if self.clock_source is None:
            self.clock_source = HostClock(self.clock)
        with self.order:
            try:
                reading = self.clock_source.read()
            except ZcbenchError as exc:  # recorded as it is: no bound
                reading = ClockReading(self.clock_source.name, self.clock(), None, False,
                                       str(exc))
            # the reply time of the clock record just before this one, or none yet
            previous = self.clock_reply_ns if self._clock_replied == self._clock_sent else None
            note = _Note(encode_clock_note(reading, previous), clock=True)
            if self._put(note):
                self._clock_sent += 1
                self.conn.send(Message("record_note", {"body": note.body}))

    def start_record(self, operator: str) -> None:
        """Prepare the run's first control record (sent before the first batch)."""
        record, limits = apply_control(
            self.execution.limits, "start", operator=operator, requested_ns=self.clock()
        )
        self._start = _Control(encode_control(record), limits, "", record)

    def control(self, action: str, operator: str, values: Mapping[str, int] | None,
                reason: str, timeout: float) -> tuple[int, dict[str, int]]:
        # a change asked for as soon as the run has booted (before the sender has sent the
        # run's start record) waits for it: the start is the run's first control record, and
        # the enclave refuses any other before it
        if self._start is not None and not self._start_sent.wait(timeout):
            raise EnvError(f"the run's start record was not sent within {timeout} s")
        with self.order:
            if self.stop.is_set():
                raise EnvError("the run has ended; its limits can no longer change")
            record, limits = apply_control(
                self.limits_logged, action, operator=operator, requested_ns=self.clock(),
                values=values, reason=reason,
            )
            why = f"engaged by {operator}" + (f": {reason}" if reason else "")
            item = _Control(encode_control(record), limits, why, record)
            if not self._put(item):
                raise EnvError("the run has ended; its limits can no longer change")
            self.controls_in_flight += 1
            self.limits_logged = limits
            self.conn.send(Message("record_note", {"body": item.body}))
        if not item.done.wait(timeout):
            raise EnvError(f"the control record was not logged within {timeout} s")
        if item.index is None:
            raise EnvError(f"the control record was not logged: {item.error}")
        return item.index, limits_of(limits)

    def run(self) -> tuple[str, str]:
        sender = threading.Thread(target=self._send_all, name="zcbench-sender", daemon=True)
        self.proxy.start()
        t0 = self.t0 = time.monotonic()
        sender.start()
        try:
            status, reason = self._receive_all()
        except _RunFailed as exc:
            status, reason = exc.status, exc.reason
        except VerificationError as exc:
            status, reason = "verification_failed", str(exc)
        except ZcbenchError as exc:
            status, reason = "host_error", str(exc)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (run_live turns it into this)
            by = exc.args[0] if exc.args else "SIGINT"
            status, reason = "interrupted", f"interrupted by {by}"
        finally:
            self.active_s = time.monotonic() - t0
            self.stop.set()
            self.proxy.stop()
        if status != "completed":
            self.execution.kill(reason)
        sender.join(timeout=10)
        while True:  # anyone still waiting for an attestation hears that the run ended
            try:
                item = self.inflight.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, (_Attest, _Control)):
                item.error = f"the run ended ({status})"
                item.done.set()
        return status, reason

    def _send_all(self) -> None:
        seq = 0
        try:
            if self._start is not None:
                with self.order:
                    if not self._put(self._start):
                        return
                    self.controls_in_flight += 1
                    self.conn.send(Message("record_note", {"body": self._start.body}))
                    self._start_sent.set()
            self._send_clock(force=True)
            for pb in self.proxy:
                if self.stop.is_set() or self.user_stop.is_set():
                    self.proxy.stop()
                    return
                self._send_drops(seq - 1)
                self._ask_ledger()
                self._send_clock()
                self._send_snapshot(seq)
                # encoded first: with feedback, batch k is encoded while batch k-1 is still
                # being logged and acted on (its bytes do not depend on the feedback)
                data = pb.encode()
                fed = self._feedback_of(seq) if self.feedback is not None else None
                if fed is False:
                    return
                # a batch's feedback and the batch go out under one lock: nothing (a control
                # record from another thread) may be logged between the two IN records
                with self.order:
                    if isinstance(fed, _Feedback) and not self._send_item(fed):
                        return
                    if not self._put((seq, data, pb)):
                        return
                    self.sent_ns[seq] = time.perf_counter_ns()
                    self.conn.send(Message("ingest", {"seq": seq, "batch": data}))
                seq += 1
            self._send_drops(seq - 1)
            self._send_snapshot(seq, force=True)  # the state the next run starts from
            self._send_clock(force=True)  # so the reading before it has its round trip
            if self.feedback is not None:  # what came of the last batch is signed too
                fed = self._feedback_of(seq)
                if isinstance(fed, _Feedback):
                    with self.order:
                        self._send_item(fed)
        except ChannelClosed as exc:
            self.send_error = exc.reason
        except Exception as exc:  # the market-data side failed: the run stops and says why
            self.source_error = f"market data: {type(exc).__name__}: {exc}"
        finally:
            self._start_sent.set()  # a control waiting for the start hears the run's end
            self._put(_DONE)

    def _feedback_of(self, seq: int) -> _Feedback | bool:
        """Wait until batch ``seq - 1`` was acted on, then what came of it as batch ``seq``'s
        feedback (True: nothing came of it; False: the run stopped meanwhile)."""
        assert self.feedback is not None
        with self.acted:
            while self.batches < seq and not self._nothing_pending(seq):
                if self.stop.is_set() or self.user_stop.is_set():
                    return False
                self.acted.wait(0.1)
            body = self.feedback.take(seq)
        return True if body is None else _Feedback(seq, body)

    def _send_item(self, item: _Feedback) -> bool:
        """Send a feedback record (the caller holds ``order``); False when the run stopped."""
        if not self._put(item):
            return False
        self.conn.send(Message("feedback", {"seq": item.seq, "body": item.body}))
        return True

    def _nothing_pending(self, seq: int) -> bool:
        """Whether acting on the batches before ``seq`` not yet acted on can add nothing to
        batch ``seq``'s feedback: nothing rests at the venue after the last act, and each of
        them gave no signal. Their acts then journal nothing and move no position, so the
        feedback taken now is the one taken after them, and batch ``seq`` need not wait for
        their commit. A control record in flight (limits about to change) waits as before
        (called with ``acted`` held)."""
        pending = range(self.batches, seq)
        return self.quiet and not self.controls_in_flight and all(
            self.silent.get(j, False) for j in pending
        )

    def _ask_ledger(self) -> None:
        """Ask the enclave for a run-checkpoint entry when one is due (in order with the
        batches, so it covers only batches the host has logged when the reply is taken)."""
        if self.ledger is None or not self.ledger.due():
            return
        with self.order:
            if self._put(_LedgerAsk()):
                self.conn.send(Message("ledger_checkpoint", {}))

    def _send_drops(self, after_seq: int) -> None:
        """Have the enclave log the batches the proxy dropped since the last batch sent."""
        report = self.proxy.take_drops()
        if report is None:
            return
        body = dataclasses.replace(report, after_seq=after_seq if after_seq >= 0 else None)
        note = _Note(body.note_body())
        with self.order:
            if self._put(note):
                self.conn.send(Message("record_note", {"body": note.body}))

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.inflight.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _next_item(self, *, wait: bool) -> object | None:
        if self.held is not None:
            item, self.held = self.held, None
            return item
        if wait:
            return self.inflight.get()
        try:
            return self.inflight.get_nowait()
        except queue.Empty:
            return None

    def _receive_all(self) -> tuple[str, str]:
        while True:
            item = self._next_ready()
            if not isinstance(item, (tuple, _Note, _Feedback)):
                # the end, an attestation, a ledger entry, a control record: after every batch
                # before it was acted on, as when each group was committed before the next
                self._drain()
            if item is _DONE:
                if self.source_error is not None:
                    return "host_error", self.source_error
                if self.send_error is not None:
                    return self._ended_by_enclave(self.send_error)
                if self.user_stop.is_set():
                    return "stopped", "stopped on request"
                return "completed", "source exhausted"
            if isinstance(item, _Attest):
                self._answer(item)
                continue
            if isinstance(item, _LedgerAsk):
                assert self.ledger is not None
                self.ledger.appended_reply(self._reply(-1))
                continue
            if isinstance(item, _Control):
                self._apply_control(item)
                continue
            if isinstance(item, _Snapshot):
                self._take_snapshot()
                continue
            group: list[ProxyBatch] = []
            self.loud = False
            try:
                self._stage_item(item, group)
                # group commit: take every reply that is already here, then one durable write;
                # with feedback, also those of batches the sender still sends while the group
                # gives no signal (nothing waits to be acted on)
                while len(group) < _MAX_GROUP:
                    if self.conn.ready():
                        nxt = self._next_item(wait=False)
                    elif self.feedback is not None and not self.loud and self.quiet:
                        nxt = self._next_sent(_STREAM_WAIT_S)
                        if nxt is None:
                            break
                    else:
                        break
                    if not isinstance(nxt, (tuple, _Note, _Feedback)):
                        self.held = nxt
                        break
                    self._stage_item(nxt, group)
            except _RunFailed:
                self._submit(group)  # what was verified before the failure still counts
                self._drain()
                raise
            self._submit(group)
            self._act_durable(0)

    def _next_ready(self) -> object:
        """The next item in flight; while it has not arrived, act on the batches the log writer
        reports durable (a batch is acted on only then: log before act)."""
        while self.awaiting and self.held is None and not self.conn.ready():
            if self.log.pending >= _MAX_PENDING:
                self._act_durable(None)  # bounded: the writer's backlog stops the intake
                continue
            self._wait_either()
        return self._next_item(wait=True)

    def _wait_either(self) -> None:
        """Wait until the enclave's next reply or the writer's next report arrives (bounded by
        the reply timeout; a writer silent that long is then waited on, and reported hung)."""
        ours = self.log.fileno()
        if ours is None:
            self._act_durable(0)
            return
        theirs = self.conn.fileno()
        if theirs is None:  # a stream without a descriptor (in memory): look again soon
            readable, _, _ = select.select([ours], [], [], 0.001)
        else:
            readable, _, _ = select.select([ours, theirs], [], [], self.reply_timeout)
            if not readable:
                self._act_durable(None)
                return
        if ours in readable:
            self._act_durable(0)

    def _submit(self, group: list[ProxyBatch]) -> None:
        """Hand a staged group to the log writer; its batches wait for their durability."""
        self.log.submit()
        self.awaiting.extend(group)

    def _act_durable(self, timeout: float | None) -> None:
        """Act on every batch the writer has made durable (waiting up to ``timeout`` for one)."""
        for verified in self.log.durable(timeout):
            self._act(verified, self.awaiting.popleft())

    def _drain(self) -> None:
        """Wait until everything handed to the writer is durable and act on its batches."""
        for verified in self.log.flush():
            self._act(verified, self.awaiting.popleft())

    def _next_sent(self, timeout: float) -> object | None:
        """The next item the sender puts in flight within ``timeout`` seconds, or None."""
        if self.held is not None:
            item, self.held = self.held, None
            return item
        try:
            return self.inflight.get(timeout=timeout)
        except queue.Empty:
            return None

    def _stage_item(self, item: object, group: list[ProxyBatch]) -> None:
        if isinstance(item, _Note):
            self._stage_note(item)
        elif isinstance(item, _Feedback):
            self._stage_feedback(item)
        else:
            group.append(self._stage(item))

    def _stage_note(self, note: _Note) -> None:
        reply = self._reply(-1)
        if reply.type != "note_logged":
            reason = reply.fields.get("reason", reply.type)
            raise _RunFailed("enclave_error", f"the enclave did not log a note: {reason}")
        if note.clock:
            self.clock_reply_ns = self.clock()
            self._clock_replied += 1
        self.log.stage_note(
            note.body, reply["checkpoint"], time_ns=reply["time_ns"], leaf=reply["leaf"]
        )

    def _apply_control(self, item: _Control) -> None:
        """Log a control record durably, then put its limits in force (log before act)."""
        try:
            reply = self._reply(-1)
            if reply.type != "note_logged":
                reason = reply.fields.get("reason", reply.type)
                raise _RunFailed("enclave_error", f"the enclave did not log a control record: "
                                 f"{reason}")
            index = self.log.writer.size
            self.log.stage_note(
                item.body, reply["checkpoint"], time_ns=reply["time_ns"], leaf=reply["leaf"]
            )
            self.log.flush()
            if self.ledger is not None:  # the record is durable first, then its ledger entry
                self.ledger.control_reply(reply)
        except BaseException as exc:
            item.error = getattr(exc, "reason", None) or str(exc)
            item.done.set()
            raise
        was = self.execution.limits
        self.execution.limits = item.limits
        if item.limits.kill_switch and not was.kill_switch:
            self.execution.kill(item.reason)
        elif not item.limits.kill_switch:
            self.execution.killed = None
        item.index = index
        item.done.set()
        with self.acted:
            self.controls_in_flight -= 1
            self.acted.notify_all()

    def _stage_feedback(self, item: _Feedback) -> None:
        reply = self._reply(item.seq)
        if reply.type != "feedback_logged" or reply["seq"] != item.seq:
            reason = reply.fields.get("reason", reply.type)
            raise _RunFailed(
                "enclave_error", f"the enclave did not log batch {item.seq}'s feedback: {reason}"
            )
        self.log.stage_feedback(
            item.seq, item.body, reply["checkpoint"], time_ns=reply["time_ns"], leaf=reply["leaf"]
        )

    def _stage(self, item: object) -> ProxyBatch:
        assert isinstance(item, tuple)
        seq, data, pb = item
        reply = self._reply(seq)
        sent = self.sent_ns.pop(seq, None)
        if sent is not None:
            self.rtt.add(time.perf_counter_ns() - sent)
        if reply.type == "error":
            code = reply["code"]
            status = "strategy_failed" if code == "strategy" else "enclave_error"
            raise _RunFailed(status, f"enclave refused batch {seq}: {reply['reason']}")
        if reply.type != "signals" or reply["seq"] != seq:
            raise _RunFailed("enclave_error", f"expected signals for batch {seq}")
        try:
            self.log.stage_reply(seq, data, reply, event_time_ns=pb.newest_event_ns)
        except DataError as exc:  # undecodable records or signals: nothing was written
            raise _RunFailed("enclave_error", f"malformed reply for batch {seq}: {exc}") from None
        assert isinstance(pb, ProxyBatch)
        if self.feedback is not None:
            silent = reply["signals"] == _NO_SIGNALS
            self.loud = self.loud or not silent
            with self.acted:
                self.silent[seq] = silent
                self.acted.notify_all()
        return pb

    def attest(self, nonce: bytes, timeout: float) -> bytes:
        request = _Attest(nonce)
        with self.order:
            if self.stop.is_set() or not self._put(request):
                raise EnvError("the run has ended; no enclave to attest")
            self.conn.send(Message("attest", {"nonce": nonce}))
        if not request.done.wait(timeout):
            raise EnvError(f"no attestation within {timeout} s")
        if request.document is None:
            raise EnvError(f"the enclave did not attest: {request.error}")
        return request.document

    def _answer(self, request: _Attest) -> None:
        try:
            reply = self._reply(-1)
        except _RunFailed as exc:
            request.error = exc.reason
            request.done.set()
            raise
        if reply.type == "document":
            request.document = reply["document"]
        else:
            request.error = str(reply.fields.get("reason", reply.type))
        request.done.set()

    def _reply(self, seq: int) -> Message:
        try:
            return self.conn.recv(timeout=self.reply_timeout)
        except TimeoutError:
            raise _RunFailed(
                "enclave_died" if not self.enclave.alive() else "enclave_error",
                f"no reply for batch {seq} within {self.reply_timeout} s",
            ) from None
        except ChannelClosed as exc:
            return self._ended_by_enclave_raise(exc.reason)
        except FrameError as exc:
            if exc.fatal:  # a truncated frame: the enclave may have died mid-reply
                return self._ended_by_enclave_raise(f"bad frame from the enclave: {exc}")
            self.conn.reject(exc, seq)
            raise _RunFailed("enclave_error", f"bad frame from the enclave: {exc}") from None

    def _ended_by_enclave(self, reason: str) -> tuple[str, str]:
        # still running after 2 s: reported as a closed channel below
        code = self.enclave.wait(2)
        if code is not None:
            return "enclave_died", f"the enclave exited (code {code}): {reason}"
        return "enclave_error", f"the channel closed: {reason}"

    def _ended_by_enclave_raise(self, reason: str) -> Message:
        status, text = self._ended_by_enclave(reason)
        raise _RunFailed(status, text)

    def _act(self, verified: Any, pb: ProxyBatch) -> None:
        now = self.clock()
        self.execution.on_market(pb.market, now_ns=now)
        if self.batches % _PRICE_EVERY == 0:
            # the execution layer keeps market batches until a price is needed; a run whose
            # strategy rarely trades would keep them all: fold them into last prices regularly
            _ = self.execution.last_price
        seen = self.clock()  # freshness: from receipt to the batch's signals being acted on
        if len(pb):  # an empty batch keeps the event clock where it was (as the backtest's)
            self.market_ns = pb.newest_event_ns
        self.execution.act(verified, now_ns=now, market_ns=self.market_ns)
        self.freshness.add(seen - pb.received_ns)
        with self.acted:
            self.silent.pop(verified.seq, None)
            self.quiet = not self.execution.rests()
            self.batches += 1
            self.acted.notify_all()
        self.events += len(pb)
        self.signals += len(verified.signals)
        if self.on_progress is not None and self.batches % 20 == 0:
            self.on_progress(self.progress())

    def progress(self) -> RunProgress:
        recent = self.freshness.recent()
        p50, p99 = recent.percentile(50), recent.percentile(99)
        elapsed = time.monotonic() - self.t0
        rate = self.events / elapsed if elapsed > 0 else 0.0
        counts = self.execution.counts()
        return RunProgress(
            self.batches,
            self.events,
            self.signals,
            rate,
            p50,
            p99,
            self.execution.pnl(),
            orders=counts["order"],
            fills=counts["fill"],
            rejects=counts["reject"],
            positions=dict(self.execution.positions),
            kill_switch=self.execution.killed,
            currency=self.account.currency,
            money_scale=self.account.money_scale,
            capital=self.execution.capital_state(),
            refusals=self.execution.refusals(),
        )
