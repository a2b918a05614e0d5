"""Reconciliation: a chain of runs (signed logs and journals) against the venue's statement.

The statement is the venue's own record of what it executed, one the fund does not control:
the simulator's drop copy (FIX messages, :class:`~zcbench.venue.fix.sim.DropCopy`) or a CSV of
executions (:data:`CSV_COLUMNS`, DESIGN.md "Venues and reconciliation").
:func:`check_reconciliation` checks both directions and returns a :class:`ReconcileReport`;
:func:`verify_reconciliation` raises :class:`ReconciliationError` when it found anything.

Every run's signals are read from its signed log (``zcbench.auditlog``: the log is verified
first, and only OUT records its newest checkpoint covers count: the host acts on nothing
else). Orders and the venue's reports the host saw are read from its journal and, for a FIX
run, from its session files (``RUN_DIR/fix``: durable before anything is sent or acted on).
The checks, each a named :class:`Discrepancy` carrying the ExecID and the log index it concerns:

statement alone
    ``garbled`` (bytes that are no message), ``invalid`` (a message or row that breaks the
    format), ``sequence_gap`` (a drop-copy MsgSeqNum missing or repeated; a CSV ``seq``
    likewise), ``repeated_exec_id``, ``overfill`` (CumQty above OrderQty, or fills adding up
    to more than the order), ``cum_mismatch`` (CumQty is not the sum of the order's fills so
    far: a fill missing in between);
statement -> orders -> signals
    ``unknown_order`` (a ClOrdID no journal of the chain sent: a trade from outside),
    ``no_signal`` (an order whose batch and position hold no signed signal, or whose
    signal hash tag disagrees with the signed one), ``signal_mismatch`` (symbol, side or
    quantity differ from the signal; a fill through the signal's limit price);
journal <-> statement
    ``missing_in_journal`` (the venue executed, the host has no record of it),
    ``not_journaled`` (the run's FIX session sent or received it, its journal lacks it: a
    host killed between the two, or a deleted row),
    ``missing_in_statement`` (the journal has a report the venue never sent: added or
    forged), ``journal_mismatch`` (the same ExecID with another quantity, price, side or
    symbol: edited), ``order_mismatch`` / ``order_without_signal`` / ``repeated_order``
    (an order row edited, added or duplicated against the signed signals);
signals -> outcomes
    ``no_outcome`` (a signed signal without an order row: hidden or deleted), ``no_venue_record``
    (an order the risk layer passed that the venue has no report of);
positions
    ``position_mismatch`` (positions the venue reported at a continuing run's start, logged in
    its start state, differ from those the chain's records make; or positions recomputed from
    the statement's fills differ from those
    recomputed from the journals' fills, or from the last run's summary).
a chain of runs (DESIGN.md, "Restart continuity")
    ``chain_broken`` (a run whose boot names a previous run that is not the one before it in
    the chain, with its final checkpoint and positions: ``zcbench.host.restart.check_link``).
    A continuing run's start state (its signed first IN record) is the record of what its
    predecessors' crash windows left: the reports, orders and unacted signals it names are
    not named ``not_journaled``, ``missing_in_journal`` or ``no_outcome``; an ExecID recorded
    in two journals, or in a journal and a start state, is ``repeated_exec_id``.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from zcbench.errors import DataError, EnvError, UsageError, VerificationError
from zcbench.venue.orders import Execution, cl_ord_id_for, signal_hash, signal_of_cl_ord_id

__all__ = [
    "CSV_COLUMNS",
    "Discrepancy",
    "ReconcileReport",
    "ReconciliationError",
    "Statement",
    "check_reconciliation",
    "read_statement",
    "verify_reconciliation",
]

CSV_COLUMNS: Final = (
    "seq",
    "exec_id",
    "order_id",
    "cl_ord_id",
    "exec_type",
    "ord_status",
    "symbol",
    "side",
    "order_qty",
    "last_qty",
    "last_px",
    "cum_qty",
    "leaves_qty",
    "ts_ns",
    "text",
)
MAX_STATEMENT_BYTES: Final = 1 << 30
_FILLS: Final = frozenset({"fill"})


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One thing that does not reconcile (module docstring for the kinds)."""

    kind: str
    detail: str
    exec_id: str = ""
    log_index: int | None = None
    run: str = ""

    def describe(self) -> str:
        where = []
        if self.exec_id:
            where.append(f"ExecID {self.exec_id}")
        if self.log_index is not None:
            where.append(f"log index {self.log_index}")
        if self.run:
            where.append(self.run)
        at = f" ({', '.join(where)})" if where else ""
        return f"{self.kind}{at}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "exec_id": self.exec_id,
                "log_index": self.log_index, "run": self.run}


@dataclass(frozen=True)
class Statement:
    """A statement read: its executions in order (each with where it was) and the problems
    met reading it."""

    path: Path
    format: str
    executions: tuple[tuple[str, Execution], ...]
    problems: tuple[Discrepancy, ...]


@dataclass(frozen=True)
class ReconcileReport:
    """What :func:`check_reconciliation` found; ``ok`` when no discrepancy."""

    runs: tuple[str, ...]
    statement: str
    statement_format: str
    executions: int
    signals: int
    orders: int
    positions: dict[str, int]
    journal_positions: dict[str, int]
    discrepancies: tuple[Discrepancy, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    def summary_lines(self) -> list[str]:
        n = len(self.discrepancies)
        head = "RECONCILED" if self.ok else f"NOT RECONCILED: {n} discrepancies"
        lines = [
            head,
            f"  runs {len(self.runs)}, signals {self.signals}, orders {self.orders}, "
            f"statement executions {self.executions} ({self.statement_format})",
            f"  positions from the statement: {', '.join(f'{k} {v:+,}' for k, v in sorted(self.positions.items())) or 'none'}",  # noqa: E501
        ]
        lines += [f"  {d.describe()}" for d in self.discrepancies]
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "runs": list(self.runs),
            "statement": self.statement,
            "statement_format": self.statement_format,
            "executions": self.executions,
            "signals": self.signals,
            "orders": self.orders,
            "positions": self.positions,
            "journal_positions": self.journal_positions,
            "discrepancies": [d.to_json() for d in self.discrepancies],
        }


class ReconciliationError(VerificationError):
    """The runs and the statement do not reconcile; ``report`` says how."""

    def __init__(self, report: ReconcileReport) -> None:
        first = report.discrepancies[0].describe() if report.discrepancies else ""
        super().__init__(
            f"{len(report.discrepancies)} discrepancies between the runs and the statement; "
            f"first: {first}",
            check="reconciliation",
            expected=0,
            actual=len(report.discrepancies),
        )
        self.report = report


# ---------------------------------------------------------------------- the statement


def read_statement(path: Path) -> Statement:
    """The statement at ``path``: FIX messages when it starts with ``8=FIX``, else a CSV with
    the header :data:`CSV_COLUMNS`. Damage is reported in :attr:`Statement.problems`, not
    raised; a file that is neither is a :class:`~zcbench.errors.DataError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_STATEMENT_BYTES:
            raise DataError(f"statement {path} is over {MAX_STATEMENT_BYTES} bytes")
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"statement {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"statement {path} is a folder, not a file") from None
    except OSError as exc:
        raise EnvError(f"cannot read the statement {path}: {exc.strerror}") from None
    if data.startswith(b"8=FIX"):
        return _read_fix(path, data)
    if data.split(b"\n", 1)[0].strip().decode("utf-8", "replace") == ",".join(CSV_COLUMNS):
        return _read_csv(path, data)
    raise DataError(
        f"{path} is no statement: neither FIX messages (8=FIX...) nor a CSV with the header "
        f"{','.join(CSV_COLUMNS)}"
    )


def _read_fix(path: Path, data: bytes) -> Statement:
    from zcbench.venue.fix.codec import GarbledMessage, decode, iter_messages
    from zcbench.venue.fix.messages import execution_from_fix

    out: list[tuple[str, Execution]] = []
    problems: list[Discrepancy] = []
    offset = 0  # of the next whole message: garbled stretches are named by the one before
    last_seq: dict[tuple[str, str], int] = {}
    for item in iter_messages(data):
        if isinstance(item, GarbledMessage):
            problems.append(Discrepancy("garbled", f"after byte {offset}: {item}"))
            continue
        where = f"byte {data.find(item, offset)}"
        offset = data.find(item, offset) + len(item)
        try:
            msg = decode(item)
            e = execution_from_fix(msg)
        except DataError as exc:
            problems.append(Discrepancy("invalid", f"message at {where}: {exc}"))
            continue
        stream = (msg.get(49) or "", msg.get(56) or "")
        seq = msg.seq or 0
        prev = last_seq.get(stream, 0)
        if seq != prev + 1:
            what = (f"MsgSeqNum {prev + 1}..{seq - 1} missing" if seq > prev + 1
                    else f"MsgSeqNum {seq} again after {prev}")
            problems.append(Discrepancy("sequence_gap", f"{what} ({stream[0]}->{stream[1]})",
                                        e.exec_id))
        last_seq[stream] = max(prev, seq)
        out.append((f"message {seq} at {where}", e))
    return Statement(path, "fix", tuple(out), tuple(problems))


def _read_csv(path: Path, data: bytes) -> Statement:
    from zcbench.venue.fix.codec import InvalidMessage, parse_price

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"statement {path} is not UTF-8") from None
    rows = list(csv.reader(io.StringIO(text)))
    out: list[tuple[str, Execution]] = []
    problems: list[Discrepancy] = []
    prev = 0
    for n, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(CSV_COLUMNS):
            problems.append(Discrepancy("invalid", f"row {n}: {len(row)} fields, expected "
                                                   f"{len(CSV_COLUMNS)}"))
            continue
        rec = dict(zip(CSV_COLUMNS, row, strict=True))
        try:
            ints = {k: _int(rec[k], k) for k in ("seq", "order_qty", "last_qty", "cum_qty",
                                                  "leaves_qty", "ts_ns")}
            px = parse_price(rec["last_px"], tag=31) if rec["last_px"] not in ("", "0") else 0
            e = Execution(
                exec_id=rec["exec_id"], order_id=rec["order_id"], cl_ord_id=rec["cl_ord_id"],
                exec_type=rec["exec_type"], ord_status=rec["ord_status"], symbol=rec["symbol"],
                side=rec["side"], order_qty=ints["order_qty"], last_qty=ints["last_qty"],
                last_px=px, cum_qty=ints["cum_qty"], leaves_qty=ints["leaves_qty"],
                cum_notional=0, ts=ints["ts_ns"], text=rec["text"],
            )
        except (DataError, InvalidMessage) as exc:
            problems.append(Discrepancy("invalid", f"row {n}: {exc}"))
            continue
        seq = ints["seq"]
        if seq != prev + 1:
            what = (f"seq {prev + 1}..{seq - 1} missing" if seq > prev + 1
                    else f"seq {seq} again after {prev}")
            problems.append(Discrepancy("sequence_gap", f"row {n}: {what}", e.exec_id))
        prev = max(prev, seq)
        out.append((f"row {n}", e))
    return Statement(path, "csv", tuple(out), tuple(problems))


def _int(text: str, name: str) -> int:
    if not text.isdigit() or (len(text) > 1 and text[0] == "0") or len(text) > 19:
        raise DataError(f"{name} must be a non-negative integer, got {text!r}")
    return int(text)


# ---------------------------------------------------------------------- the runs


@dataclass
class _Order:
    run: str
    cl_ord_id: str
    log_index: int  # where its signal's OUT record is in the run's log (the journal's locator)
    seq: int  # its signal: the batch it answered (-1: the order names none)
    pos: int  # and its position among that batch's signals
    symbol: str
    side: str
    quantity: int
    risk_rejected: bool = False


@dataclass
class _Run:
    name: str
    run_id: str
    signals: dict[tuple[int, int], Any]  # (batch seq, position) -> Signal
    out_index: dict[int, int]  # batch seq -> the log index of its OUT record
    orders: dict[str, _Order]
    reports: dict[str, dict[str, Any]]  # exec id -> journal row
    fills_positions: dict[str, int]
    summary_positions: dict[str, int] | None
    origin: str = ""
    start: Any = None  # the StartState it logged first, when it continues a run
    linked: bool = False  # its boot names a previous run
    # what only its FIX session holds (a crash window): exec id -> row, and the findings,
    # named unless a later run's start state recorded them
    session_reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    session_fills: dict[str, int] = field(default_factory=dict)  # exec id -> signed fill
    pending: list[tuple[str, Discrepancy]] = field(default_factory=list)


def _load_run(run_dir: Path, trust: str | Path, problems: list[Discrepancy]) -> _Run:
    from zcbench.auditlog import RecordFilter, check_log
    from zcbench.auditlog.frame import iter_records
    from zcbench.host.execution import read_journal
    from zcbench.strategy import decode_signals

    name = str(run_dir)
    report = check_log(run_dir, trust=trust)
    if not report.verified:
        problems.append(Discrepancy("log_not_verified", f"{report.classification}: "
                                    f"{report.message}", run=name))
    signals: dict[tuple[int, int], Any] = {}
    out_index: dict[int, int] = {}
    for record, _ in iter_records(run_dir, RecordFilter(kinds=frozenset({"out"}))):
        if record.kind == "out" and record.seq is not None and record.index < report.entries:
            out_index[record.seq] = record.index
            for pos, s in enumerate(decode_signals(record.body)):
                signals[(record.seq, pos)] = s
    journal = read_journal(run_dir)
    if journal.torn is not None:
        problems.append(Discrepancy("journal_torn", journal.torn.describe(), run=name))
    run_id = str(journal.header.get("run_id", ""))
    orders: dict[str, _Order] = {}
    reports: dict[str, dict[str, Any]] = {}
    positions: dict[str, int] = {}
    next_pos: dict[int, int] = {}  # batch seq -> the next signal position
    for row in journal.rows.iter_rows(named=True):
        ev, cid, li, seq = row["event"], row["cl_ord_id"], row["log_index"], row["seq"]
        if ev == "order":
            found = _pos_of(cid, run_id, seq)
            pos = next_pos.get(seq, 0) if found is None else found
            next_pos[seq] = pos + 1
            key = cid or cl_ord_id_for(run_id, seq, pos)
            if key in orders:
                problems.append(Discrepancy("repeated_order", f"order {key} twice in the journal",
                                            log_index=li, run=name))
                continue
            orders[key] = _Order(name, key, li, seq, pos, row["symbol"], row["side"],
                                 row["quantity"])
        elif ev == "reject" and not row["exec_id"]:
            key = cid or cl_ord_id_for(run_id, seq, max(0, next_pos.get(seq, 1) - 1))
            if key in orders:
                orders[key].risk_rejected = True
        if row["exec_id"]:
            if row["exec_id"] in reports:
                problems.append(Discrepancy("journal_mismatch", "ExecID twice in the journal",
                                            row["exec_id"], li, name))
            reports[row["exec_id"]] = row
        if ev in _FILLS:
            q = row["quantity"] if row["side"] == "buy" else -row["quantity"]
            positions[row["symbol"]] = positions.get(row["symbol"], 0) + q
    run = _Run(name, run_id, signals, out_index, orders, reports, positions, None,
               origin=report.origin or "")
    _add_fix_session(run_dir / "fix", run)
    _add_start(run_dir, run, trust, problems)
    summary = None
    summary_file = run_dir / "summary.json"
    if summary_file.is_file():
        try:
            summary = {str(k): int(v) for k, v in json.loads(summary_file.read_text())
                       .get("positions", {}).items()}
        except (ValueError, TypeError, AttributeError):
            problems.append(Discrepancy("invalid", "summary.json positions unreadable", run=name))
    run.summary_positions = summary
    return run


def _add_fix_session(folder: Path, run: _Run) -> None:
    """The run's FIX session files are the host's durable record too: every order is stored
    (fsynced) before it is sent and every report before it is acted on, so a host killed
    between that and its journal's append still shows what it sent and received. What only
    they hold is a pending ``not_journaled`` finding, resolved when a later run's start state
    recorded it."""
    from zcbench.venue.fix.messages import execution_from_fix, order_from_fix
    from zcbench.venue.fix.session import read_session_file

    for msg in read_session_file(folder / "out.fix"):
        if msg.msg_type == "D":
            o = order_from_fix(msg)
            if o.cl_ord_id not in run.orders:
                run.pending.append((o.cl_ord_id, Discrepancy(
                    "not_journaled", f"order {o.cl_ord_id} was sent (FIX session) but is not "
                    "in the journal", log_index=o.log_index, run=run.name)))
                named = signal_of_cl_ord_id(o.cl_ord_id)
                seq = named[1] if named is not None and named[0] == run.run_id else -1
                run.orders[o.cl_ord_id] = _Order(run.name, o.cl_ord_id, o.log_index, seq,
                                                 o.signal_pos, o.symbol, o.side, o.quantity)
    for msg in read_session_file(folder / "in.fix"):
        if msg.msg_type not in ("8", "9"):
            continue
        e = execution_from_fix(msg)
        if e.exec_id in run.reports or e.exec_id in run.session_reports:
            continue
        run.pending.append((e.exec_id, Discrepancy(
            "not_journaled", f"the FIX session received this {e.exec_type}, the journal does "
            "not have it", e.exec_id, e.log_index, run.name)))
        trade = e.exec_type == "trade"
        run.session_reports[e.exec_id] = {
            "event": "fill" if trade else e.exec_type, "symbol": e.symbol, "side": e.side,
            "quantity": e.last_qty if trade else e.order_qty,
            "price_ticks": e.last_px if trade else None, "log_index": e.log_index}
        if trade:
            run.session_fills[e.exec_id] = e.signed_qty


def _add_start(run_dir: Path, run: _Run, trust: str | Path,
               problems: list[Discrepancy]) -> None:
    """A continuing run's start state (its signed first IN record): the reports, orders and
    unacted signals of the runs before it that it recorded."""
    from zcbench.auditlog.boot import boot_verifier_for
    from zcbench.auditlog.opening import boot_record_of, start_state_of

    try:
        identity = boot_verifier_for(run_dir)(boot_record_of(run_dir), trust)
        run.linked = identity.previous is not None
        run.start = start_state_of(run_dir)
    except (DataError, VerificationError) as exc:
        problems.append(Discrepancy("chain_broken", f"boot or start state unreadable: {exc}",
                                    run=run.name))


def _pos_of(cl_ord_id: str, run_id: str, seq: int) -> int | None:
    """The signal position a ClOrdID of batch ``seq`` of run ``run_id`` names (else None)."""
    named = signal_of_cl_ord_id(cl_ord_id)
    if named is None or named[:2] != (run_id, seq):
        return None
    return named[2]


# ---------------------------------------------------------------------- the checks


def check_reconciliation(
    run_dirs: Sequence[Path], statement: Path, *, trust: str | Path = "aws"
) -> ReconcileReport:
    """Reconcile ``run_dirs`` (a chain of runs, in order) with ``statement``; never raises
    for bad content (it is a discrepancy), only for a path that is not there."""
    if not run_dirs:
        raise UsageError("reconcile needs at least one run folder")
    problems: list[Discrepancy] = []
    st = read_statement(statement)
    problems += st.problems
    runs = [_load_run(Path(r), trust, problems) for r in run_dirs]
    orders: dict[str, _Order] = {}
    for run in runs:
        for cid, o in run.orders.items():
            if cid in orders:
                problems.append(Discrepancy("repeated_order", f"ClOrdID {cid} in two runs",
                                            log_index=o.log_index, run=run.name))
            orders[cid] = o
    signals = {(r.name, k): s for r in runs for k, s in r.signals.items()}
    out_index = {(r.name, seq): i for r in runs for seq, i in r.out_index.items()}
    problems += _chain_links(runs, trust)
    journal_reports, covered_signals, crash_fills = _recorded(runs, problems)

    # orders against their signed signals
    for o in orders.values():
        s = signals.get((o.run, (o.seq, o.pos)))
        if s is None:
            problems.append(Discrepancy("order_without_signal",
                                        f"order {o.cl_ord_id}: no signed signal at position "
                                        f"{o.pos} of batch {o.seq}", log_index=o.log_index,
                                        run=o.run))
        elif (s.symbol, s.side, s.quantity) != (o.symbol, o.side, o.quantity):
            problems.append(Discrepancy("order_mismatch",
                                        f"order {o.cl_ord_id} is {o.side} {o.quantity} "
                                        f"{o.symbol}, the signal {s.side} {s.quantity} "
                                        f"{s.symbol}", log_index=o.log_index, run=o.run))
    # every signed signal has its outcome
    have = {(o.run, o.seq, o.pos) for o in orders.values()} | covered_signals
    for (run_name, (seq, pos)), s in sorted(signals.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if (run_name, seq, pos) not in have:
            problems.append(Discrepancy("no_outcome",
                                        f"signal {pos} of batch {seq} ({s.side} {s.quantity} "
                                        f"{s.symbol}) has no order in the journal",
                                        log_index=out_index[(run_name, seq)], run=run_name))

    # the statement, execution by execution
    seen: set[str] = set()
    cum: dict[str, int] = {}
    by_order: dict[str, int] = {}
    positions: dict[str, int] = {}
    on_statement: set[str] = set()
    for where, e in st.executions:
        mine = orders.get(e.cl_ord_id)
        at: int | None = mine.log_index if mine is not None else (e.log_index or None)
        if e.exec_id in seen:
            problems.append(Discrepancy("repeated_exec_id", f"{where}: ExecID again",
                                        e.exec_id, at))
            continue
        seen.add(e.exec_id)
        if e.exec_type == "cancel_rejected":
            on_statement.add(e.orig_cl_ord_id)
        else:
            on_statement.add(e.cl_ord_id)
            if e.orig_cl_ord_id:
                on_statement.add(e.orig_cl_ord_id)
        owner = mine or orders.get(e.orig_cl_ord_id)
        if owner is None and e.exec_type != "cancel_rejected":
            problems.append(Discrepancy("unknown_order",
                                        f"{where}: ClOrdID {e.cl_ord_id} was sent by none of "
                                        "these runs: an execution no signal caused", e.exec_id))
        elif owner is not None:
            _check_signal(e, owner, signals, problems, where)
        if e.exec_type == "trade":
            key = e.order_id
            cum[key] = cum.get(key, 0) + e.last_qty
            if e.cum_qty != cum[key]:
                problems.append(Discrepancy("cum_mismatch",
                                            f"{where}: CumQty {e.cum_qty}, the fills so far add "
                                            f"up to {cum[key]}", e.exec_id, at))
            by_order[e.cl_ord_id] = by_order.get(e.cl_ord_id, 0) + e.last_qty
            limit = owner.quantity if owner is not None else e.order_qty
            if e.cum_qty > e.order_qty or cum[key] > max(limit, e.order_qty):
                problems.append(Discrepancy("overfill",
                                            f"{where}: filled {max(e.cum_qty, cum[key])} of "
                                            f"{e.order_qty}", e.exec_id, at))
            positions[e.symbol] = positions.get(e.symbol, 0) + e.signed_qty
        # the journal against the statement
        found = journal_reports.get(e.exec_id)
        if found is None:
            problems.append(Discrepancy("missing_in_journal",
                                        f"{where}: the venue's {e.exec_type} is in no journal",
                                        e.exec_id, at))
        else:
            _, row = found
            want = (e.symbol, e.side, e.last_qty if e.exec_type == "trade" else e.order_qty,
                    e.last_px if e.exec_type == "trade" else None)
            got = (row["symbol"], row["side"], row["quantity"], row["price_ticks"])
            if want != got:
                problems.append(Discrepancy("journal_mismatch",
                                            f"journal has {got}, the statement {want}",
                                            e.exec_id, at, found[0].name))
    for exec_id, (run, row) in journal_reports.items():
        if exec_id not in seen:
            problems.append(Discrepancy("missing_in_statement",
                                        f"the journal's {row['event']} is not in the statement",
                                        exec_id, row["log_index"], run.name))
    for o in orders.values():
        if not o.risk_rejected and o.cl_ord_id not in on_statement:
            problems.append(Discrepancy("no_venue_record",
                                        f"order {o.cl_ord_id} passed the risk limits but the "
                                        "venue reports nothing of it", log_index=o.log_index,
                                        run=o.run))

    # positions
    journal_positions: dict[str, int] = {}
    for fills in [r.fills_positions for r in runs] + [crash_fills]:
        for sym, q in fills.items():
            journal_positions[sym] = journal_positions.get(sym, 0) + q
    problems += _compare_positions("the statement's fills", positions,
                                   "the journals' fills", journal_positions)
    total = _summary_positions(runs)
    if total is not None:
        problems += _compare_positions("the statement's fills", positions,
                                       "the runs' summaries", total)
    return ReconcileReport(
        runs=tuple(r.name for r in runs),
        statement=str(statement),
        statement_format=st.format,
        executions=len(st.executions),
        signals=len(signals),
        orders=len(orders),
        positions={k: v for k, v in sorted(positions.items()) if v},
        journal_positions={k: v for k, v in sorted(journal_positions.items()) if v},
        discrepancies=tuple(problems),
    )


def _chain_links(runs: Sequence[_Run], trust: str | Path) -> list[Discrepancy]:
    """A run whose boot names a previous run is checked against the run before it in the
    chain (``zcbench.host.restart.check_link``): that run's final checkpoint and positions."""
    from zcbench.host.restart import check_link, venue_position_problems

    out: list[Discrepancy] = []
    for before, run in itertools.pairwise(runs):
        if run.linked:
            # the venue's own positions at the start, where it was asked, are checked with the
            # link; a difference is a position mismatch, not a broken chain
            venue = (set(venue_position_problems(Path(run.name), run.start))
                     if run.start is not None else set())
            out += [Discrepancy("position_mismatch" if text in venue else "chain_broken", text,
                                run=run.name)
                    for text in check_link(Path(before.name), Path(run.name), trust=trust)]
    return out


def _recorded(
    runs: Sequence[_Run], problems: list[Discrepancy]
) -> tuple[dict[str, tuple[_Run, dict[str, Any]]], set[tuple[str, int, int]], dict[str, int]]:
    """The venue reports the chain recorded, each exactly once: journal rows, and the reports
    a continuing run's start state recorded of the runs before it; then what only a FIX
    session holds (a crash window no later run closed, named ``not_journaled``). Also the
    unacted signals the start states name, by (run, batch seq, position), and the fills only
    the start states and sessions hold, by symbol."""
    by_origin = {r.origin: r.name for r in runs}
    reports: dict[str, tuple[_Run, dict[str, Any]]] = {}
    fills: dict[str, int] = {}
    for r in runs:
        for x, row in r.reports.items():
            if x in reports:
                problems.append(Discrepancy("repeated_exec_id", "ExecID in two runs' journals: "
                                            "counted twice", x, row["log_index"], r.name))
            reports[x] = (r, row)
    covered: set[str] = set()
    signals: set[tuple[str, int, int]] = set()
    for r in runs:
        if r.start is None:
            continue
        covered |= {o.cl_ord_id for o in r.start.orders}
        signals |= {(by_origin.get(o, o), seq, k) for o, seq, k in r.start.not_acted}
        for x in r.start.executions:
            covered.add(x.exec_id)
            if x.exec_id in reports:
                problems.append(Discrepancy("repeated_exec_id", "ExecID recorded twice: in a "
                                            "journal and in a start state", x.exec_id,
                                            reports[x.exec_id][1]["log_index"], r.name))
                continue
            trade = x.exec_type == "trade"
            reports[x.exec_id] = (r, {
                "event": "fill" if trade else x.exec_type, "symbol": x.symbol, "side": x.side,
                "quantity": x.last_qty if trade else x.order_qty,
                "price_ticks": x.last_px if trade else None, "log_index": None})
            if trade:
                fills[x.symbol] = fills.get(x.symbol, 0) + x.signed_qty
    for r in runs:
        problems += [d for key, d in r.pending if key not in covered]
        for x, row in r.session_reports.items():
            if x not in reports:
                reports[x] = (r, row)
                q = r.session_fills.get(x, 0)
                fills[row["symbol"]] = fills.get(row["symbol"], 0) + q
    return reports, signals, fills


def _summary_positions(runs: Sequence[_Run]) -> dict[str, int] | None:
    """The positions the runs' summaries end with: a run continuing another (its boot names
    it) carries that one's positions, so a chain counts its last summary; separate chains
    add up. None when a chain's last run has no summary (a host killed before writing it)."""
    total: dict[str, int] = {}
    for i, run in enumerate(runs):
        last_of_chain = i + 1 == len(runs) or not runs[i + 1].linked
        if not last_of_chain:
            continue
        if run.summary_positions is None:
            return None
        for sym, q in run.summary_positions.items():
            total[sym] = total.get(sym, 0) + q
    return total


def _check_signal(e: Execution, o: _Order, signals: dict[Any, Any], problems: list[Discrepancy],
                  where: str) -> None:
    s = signals.get((o.run, (o.seq, o.pos)))
    if s is None:
        problems.append(Discrepancy("no_signal", f"{where}: order {o.cl_ord_id} has no signed "
                                    "signal", e.exec_id, o.log_index, o.run))
        return
    if e.signal_hash and (e.signal_hash != signal_hash(s) or e.log_index != o.log_index):
        problems.append(Discrepancy("no_signal", f"{where}: the report's signal tags "
                                    f"(log index {e.log_index}, hash {e.signal_hash[:12]}...) "
                                    "are not the signed signal's", e.exec_id, o.log_index, o.run))
    if e.exec_type == "cancel_rejected":
        return
    grown = e.order_qty > s.quantity and not e.orig_cl_ord_id
    if (e.symbol, e.side) != (s.symbol, s.side) or grown:
        problems.append(Discrepancy("signal_mismatch", f"{where}: {e.side} {e.order_qty} "
                                    f"{e.symbol} at the venue, the signal {s.side} "
                                    f"{s.quantity} {s.symbol}", e.exec_id, o.log_index, o.run))
    if e.exec_type == "trade" and s.limit_price is not None and (
        (s.side == "buy" and e.last_px > s.limit_price)
        or (s.side == "sell" and e.last_px < s.limit_price)
    ):
        problems.append(Discrepancy("signal_mismatch", f"{where}: filled at {e.last_px}, "
                                    f"through the signal's limit {s.limit_price}", e.exec_id,
                                    o.log_index, o.run))


def _compare_positions(a_name: str, a: dict[str, int], b_name: str,
                       b: dict[str, int]) -> Iterable[Discrepancy]:
    for sym in sorted(set(a) | set(b)):
        if a.get(sym, 0) != b.get(sym, 0):
            yield Discrepancy("position_mismatch", f"{sym}: {a.get(sym, 0)} from {a_name}, "
                              f"{b.get(sym, 0)} from {b_name}")


def verify_reconciliation(
    run_dirs: Sequence[Path], statement: Path, *, trust: str | Path = "aws"
) -> ReconcileReport:
    """:func:`check_reconciliation`, raising :class:`ReconciliationError` unless it is clean."""
    report = check_reconciliation(run_dirs, statement, trust=trust)
    if not report.ok:
        raise ReconciliationError(report)
    return report
