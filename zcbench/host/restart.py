"""Restart continuity: a run that continues the one before it (DESIGN.md, "Restart continuity").

:func:`read_run_end` reads what a finished or killed run's durable records hold at its end: its
log verified (the final checkpoint is the newest one it verifies to), its positions (those its
own start record carried in, plus its journal's fills), its orders, the venue reports it
recorded, and what its FIX session stored that its journal never got (a host killed between
the two), and the signed signals it never acted on. :func:`continue_run` turns that into the
next run's :class:`Continuation`: the :class:`~zcbench.auditlog.link.RunLink` its boot names and
what :func:`venue_state_at_start` needs to ask the venue what stands now, which becomes the
next run's first IN record (:class:`~zcbench.strategy.StartState`), and the strategy's newest
snapshot the run logged (:func:`zcbench.auditlog.snapshots.find_snapshot`), which
:func:`restore_snapshot` hands the next run's enclave right after the start state; then
:func:`catch_up` hands it the previous run's records after that snapshot, so the strategy's
state also holds the batches logged after it (a killed run's).

:func:`check_link` is the verifier's side, used by ``zcbench log verify --previous`` and
``zcbench reconcile``: the next run's boot names exactly the previous run's final checkpoint
and the positions its records carry, and its start state adds to those positions exactly
the fills it recovered.

It reads run folders only through the public readers (``zcbench.auditlog``,
:func:`~zcbench.host.execution.read_journal`, the FIX session files) and writes nothing there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zcbench.auditlog.link import RunLink
from zcbench.auditlog.snapshots import LoggedSnapshot, find_snapshot, sealed_snapshot_path
from zcbench.errors import DataError, UsageError, VerificationError, ZcbenchError
from zcbench.strategy import StartExecution, StartOrder, StartState, decode_signals
from zcbench.venue.orders import signal_of_cl_ord_id

__all__ = [
    "Continuation",
    "RunEnd",
    "carry_paper_orders",
    "catch_up",
    "chain_exec_ids",
    "chain_folders",
    "check_link",
    "continue_run",
    "log_start_state",
    "out_record",
    "read_run_end",
    "read_start_state",
    "restore_snapshot",
    "start_execution",
    "venue_position_problems",
    "venue_state_at_start",
]

@dataclass(frozen=True)
class RunEnd:
    """What a run's durable records hold at its end (module docstring). ``positions`` are
    nonzero ``(symbol, quantity)`` pairs; ``orders`` every order of the run by ClOrdID (its
    journal's and those only its FIX session stored), with ``leaves_qty`` per the last
    report recorded; ``exec_ids`` the reports recorded in its journal or its start record;
    ``unjournaled`` the reports its FIX session stored and neither holds; ``unjournaled_orders``
    the orders its FIX session sent and its journal lacks; ``not_acted`` its signed signals
    without an order; ``fix_folders`` its session's folders, carried ones first;
    ``snapshot`` the newest strategy snapshot its log records under the final checkpoint
    (taken, or restored from its predecessor's), without its sealed bytes (``continue_run``
    reads them); ``snapshot_behind`` the folder of a predecessor whose snapshot it never
    restored and caught up on (killed before it did)."""

    run_dir: Path
    run_id: str
    origin: str
    size: int
    root: bytes
    positions: tuple[tuple[str, int], ...]
    start: StartState | None
    previous: RunLink | None
    orders: dict[str, StartOrder]
    exec_ids: frozenset[str]
    unjournaled: tuple[StartExecution, ...]
    unjournaled_orders: tuple[StartOrder, ...]
    not_acted: tuple[tuple[str, int, int], ...]
    fix_folders: tuple[Path, ...]
    fix_sender: str | None
    newest_event_ns: int | None
    snapshot: LoggedSnapshot | None = None
    snapshot_behind: Path | None = None
    trust: str | Path = "dev"
    """The root its log was verified under (its predecessors' are read under it too)."""

    @property
    def link(self) -> RunLink:
        """What the next run's boot names."""
        return RunLink(self.origin, self.size, self.root, self.positions)

    def open_order_ids(self) -> list[str]:
        """The ClOrdIDs of its orders still working at the venue, per the reports recorded."""
        return sorted(cid for cid, o in self.orders.items() if o.leaves_qty > 0)


@dataclass(frozen=True)
class Continuation:
    """A run continuing ``end``: the link its boot names, and its venue's starting point;
    ``snapshot`` the strategy snapshot it restores, its sealed bytes read (None: none)."""

    end: RunEnd
    link: RunLink = field(init=False)
    snapshot: LoggedSnapshot | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "link", self.end.link)


def read_start_state(run_dir: Path) -> StartState | None:
    """The start state a run logged as its first IN record (None when it continues none)."""
    from zcbench.auditlog.opening import start_state_of

    return start_state_of(run_dir)


def _boot_identity(run_dir: Path, trust: str | Path) -> Any:
    from zcbench.auditlog.boot import boot_verifier_for
    from zcbench.auditlog.opening import boot_record_of

    return boot_verifier_for(run_dir)(boot_record_of(run_dir), trust)


def read_run_end(run_dir: Path, *, trust: str | Path = "dev") -> RunEnd:
    """What ``run_dir``'s durable records hold at its end; raises
    :class:`~zcbench.errors.VerificationError` when its log does not verify (a broken run is
    no base to continue from) and :class:`~zcbench.errors.UsageError` when it is no run.

    A continuing run killed before it logged its start state acted on nothing; its end is
    its predecessor's (read through the folder its journal's header names) with whatever its
    own FIX session stored."""
    from zcbench.auditlog import RecordFilter, check_log
    from zcbench.auditlog.boot import boot_verifier_for
    from zcbench.auditlog.checkpoint import parse_checkpoint_note
    from zcbench.auditlog.frame import iter_records
    from zcbench.host.execution import read_journal

    run_dir = Path(run_dir)
    if not (run_dir / "journal.jsonl").is_file():
        raise UsageError(f"{run_dir} is no run folder (no journal.jsonl); name the folder of "
                         "the run to continue")
    report = check_log(run_dir, trust=trust, boot_verifier=boot_verifier_for(run_dir))
    if not report.verified or report.latest_checkpoint is None:
        raise VerificationError(
            f"the run {run_dir} cannot be continued: its log is {report.classification} "
            f"({report.message})",
            check="previous_run_log",
        )
    final = parse_checkpoint_note(report.latest_checkpoint)
    identity = _boot_identity(run_dir, trust)
    start = read_start_state(run_dir)
    journal = read_journal(run_dir)
    run_id = str(journal.header.get("run_id", ""))
    book = _Book()
    inherited: RunEnd | None = None
    if start is not None:
        book.take_start(start)
    elif identity.previous is not None:
        before = journal.header.get("continues")
        if not isinstance(before, str) or not before:
            raise VerificationError(
                f"{run_dir} continues {identity.previous.origin} but its journal names no "
                "folder of that run", check="previous_run_folder")
        inherited = read_run_end(Path(before), trust=trust)
        book.inherit(inherited)
    book.take_journal(journal.rows.iter_rows(named=True), final.origin)
    fix = run_dir / "fix"
    carried, sender = _carried(fix)
    if sender is None and inherited is not None:  # killed before its session resumed
        carried, sender = list(inherited.fix_folders), inherited.fix_sender
    book.take_session(fix, final.origin, run_id)
    batches = 0
    for record, _ in iter_records(run_dir, RecordFilter(kinds=frozenset({"in", "out"}))):
        if record.index >= report.entries:
            break
        if record.kind == "in" and record.event_time_ns is not None:
            book.newest = record.event_time_ns
        if record.kind == "out" and record.seq is not None:  # an OUT record has its seq
            batches += 1
            for k in range(len(decode_signals(record.body))):
                if (final.origin, record.seq, k) not in book.acted:
                    book.not_acted.append((final.origin, record.seq, k))
    if sender is None:
        sender = book.sender
    snapshot = find_snapshot(run_dir, origin=final.origin, size=final.size, root=final.root,
                             load=False)
    behind = None
    if snapshot is None and inherited is not None and (
            inherited.snapshot is not None or inherited.snapshot_behind is not None):
        behind = inherited.snapshot_behind or inherited.run_dir
    elif identity.previous is not None and (snapshot is None or (
            snapshot.action == "restored" and not batches)):
        # killed between its start state and its restore (its predecessor's snapshot is not
        # proven under its own final checkpoint), or during its catch-up (the state restored
        # lacks its predecessor's batches after that snapshot): it acted on no batch
        before = journal.header.get("continues")
        if isinstance(before, str) and before and _logs_a_snapshot(Path(before)):
            behind = Path(before)
    return RunEnd(
        run_dir=run_dir,
        run_id=run_id,
        origin=final.origin,
        size=final.size,
        root=final.root,
        positions=tuple(sorted((s, q) for s, q in book.positions.items() if q)),
        start=start,
        previous=identity.previous,
        orders=book.orders,
        exec_ids=frozenset(book.exec_ids),
        unjournaled=tuple(book.unjournaled),
        unjournaled_orders=tuple(book.orders[cid] for cid in book.unjournaled_ids),
        not_acted=tuple(book.not_acted),
        fix_folders=(*carried, fix.resolve()) if (fix / "out.fix").exists() else tuple(carried),
        fix_sender=sender,
        newest_event_ns=book.newest,
        snapshot=snapshot,
        snapshot_behind=behind,
        trust=trust,
    )


def _logs_a_snapshot(run_dir: Path) -> bool:
    """Whether the log in ``run_dir`` records any strategy snapshot."""
    from zcbench.auditlog import RecordFilter
    from zcbench.auditlog.frame import iter_records
    from zcbench.strategy import is_snapshot_note

    if not run_dir.is_dir():
        return False
    notes = RecordFilter(kinds=frozenset({"note"}))
    return any(is_snapshot_note(r.body) for r, _ in iter_records(run_dir, notes))


def _carried(fix: Path) -> tuple[list[Path], str | None]:
    from zcbench.venue.fix.session import CARRIED_FILE

    try:
        doc = json.loads((fix / CARRIED_FILE).read_text())
        return [Path(str(f)) for f in doc["folders"]], str(doc["sender"])
    except (OSError, ValueError, KeyError, TypeError):
        return [], None


@dataclass
class _Book:
    """A run's end being worked out: positions its records carry, orders, reports recorded
    and not, signals acted on and not."""

    positions: dict[str, int] = field(default_factory=dict)
    orders: dict[str, StartOrder] = field(default_factory=dict)
    exec_ids: set[str] = field(default_factory=set)
    unjournaled: list[StartExecution] = field(default_factory=list)
    unjournaled_ids: list[str] = field(default_factory=list)
    acted: set[tuple[str, int, int]] = field(default_factory=set)
    not_acted: list[tuple[str, int, int]] = field(default_factory=list)
    leaves: dict[str, int] = field(default_factory=dict)
    newest: int | None = None
    sender: str | None = None

    def take_start(self, start: StartState) -> None:
        self.positions = dict(start.position_map)
        self.exec_ids |= {e.exec_id for e in start.executions}
        for o in (*start.open_orders, *start.orders):
            self.orders.setdefault(o.cl_ord_id, o)

    def inherit(self, end: RunEnd) -> None:
        # nothing of the predecessor's crash window was recorded by this run: it stays open
        self.positions = dict(end.positions)
        self.orders = dict(end.orders)
        self.exec_ids = set(end.exec_ids)
        self.unjournaled = list(end.unjournaled)
        self.unjournaled_ids = [o.cl_ord_id for o in end.unjournaled_orders]
        self.not_acted = list(end.not_acted)
        self.newest = end.newest_event_ns

    def take_journal(self, rows: Iterable[dict[str, Any]], origin: str) -> None:
        next_pos: dict[int, int] = {}  # batch seq: the next signal position
        for row in rows:
            cid, seq = str(row["cl_ord_id"]), int(row["seq"])
            if row["event"] == "order":
                named = signal_of_cl_ord_id(cid)
                pos = named[2] if named is not None else next_pos.get(seq, 0)
                next_pos[seq] = pos + 1
                self.acted.add((origin, seq, pos))
                if cid:
                    self.orders[cid] = StartOrder(cid, row["symbol"], row["side"],
                                                  row["quantity"], row["quantity"], seq, pos)
            if row["exec_id"]:
                self.exec_ids.add(str(row["exec_id"]))
            if row["event"] == "fill":
                q = row["quantity"] if row["side"] == "buy" else -row["quantity"]
                self.positions[row["symbol"]] = self.positions.get(row["symbol"], 0) + q
            # what is left of an order, per the reports journaled (a FIX session's stored
            # reports, read next, say it again where they hold more)
            known = self.orders.get(cid)
            if known is not None and row["event"] in ("fill", "cancel", "expire", "reject"):
                left = (max(known.leaves_qty - int(row["quantity"]), 0)
                        if row["event"] == "fill" else 0)
                self.orders[cid] = dataclasses.replace(known, leaves_qty=left)

    def take_session(self, fix: Path, origin: str, run_id: str) -> None:
        from zcbench.venue.fix.messages import execution_from_fix, order_from_fix
        from zcbench.venue.fix.session import read_session_file

        sent = read_session_file(fix / "out.fix")
        if sent:
            self.sender = sent[0].get(49)
        for msg in sent:
            if msg.msg_type != "D":
                continue
            with contextlib.suppress(DataError):
                o = order_from_fix(msg)
                named = signal_of_cl_ord_id(o.cl_ord_id)
                if named is None:  # no order of a zcbench run: no signal of this one
                    continue
                if named[0] == run_id:  # not an earlier run's order resent
                    self.acted.add((origin, named[1], named[2]))
                if o.cl_ord_id not in self.orders:
                    self.orders[o.cl_ord_id] = StartOrder(
                        o.cl_ord_id, o.symbol, o.side, o.quantity, o.quantity, named[1],
                        named[2])
                    self.unjournaled_ids.append(o.cl_ord_id)
        # every report stored (journaled or not) says what is left of its order
        for msg in read_session_file(fix / "in.fix"):
            if msg.msg_type not in ("8", "9"):
                continue
            with contextlib.suppress(DataError):
                e = execution_from_fix(msg)
                if e.exec_type != "cancel_rejected":
                    self.leaves[e.cl_ord_id] = e.leaves_qty
                    if e.orig_cl_ord_id:
                        self.leaves[e.orig_cl_ord_id] = 0
                if e.exec_id not in self.exec_ids:
                    self.unjournaled.append(start_execution(e))
                    self.exec_ids.add(e.exec_id)
        for cid, left in self.leaves.items():
            known = self.orders.get(cid)
            if known is not None:
                self.orders[cid] = StartOrder(known.cl_ord_id, known.symbol, known.side,
                                              known.quantity, left, known.batch,
                                              known.signal)


def start_execution(e: Any) -> StartExecution:
    """A :class:`zcbench.venue.Execution` as the start state records it."""
    return StartExecution(
        exec_id=e.exec_id, cl_ord_id=e.cl_ord_id, exec_type=e.exec_type, symbol=e.symbol,
        side=e.side, order_qty=e.order_qty,
        last_qty=e.last_qty if e.exec_type == "trade" else 0,
        last_px=e.last_px if e.exec_type == "trade" else 0, cum_qty=e.cum_qty,
        leaves_qty=e.leaves_qty,
    )


def continue_run(previous: Path, *, trust: str | Path = "dev") -> Continuation:
    """The continuation of the run in ``previous`` (:func:`read_run_end`); a run still
    running (its control socket answers) is refused: two hosts would act for one chain."""
    _refuse_running(Path(previous))
    end = read_run_end(previous, trust=trust)
    # the sealed file is read now, so a missing one is said before anything starts
    return Continuation(end, end.snapshot.loaded() if end.snapshot is not None else None)


def _refuse_running(run_dir: Path) -> None:
    import socket

    from zcbench.serve.control import control_socket

    path = control_socket(run_dir)
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(str(path))
    except OSError:
        return  # left behind by a killed host: nobody answers
    finally:
        probe.close()
    raise UsageError(f"the run in {run_dir} is still running (its control socket answers); "
                     "stop it before continuing it")


def venue_state_at_start(
    continuation: Continuation, venue: Any, *, recovered: Iterable[Any] = (),
    venue_positions: dict[str, int] | None = None,
) -> StartState:
    """The venue's state before the continuing run's first batch: ``recovered`` are the
    reports the venue sent again when the session resumed (``FixVenue.resume``); with the
    previous run's stored but unjournaled ones they are the start state's executions (each
    once), and the positions are the carried ones plus their fills. Open orders are the
    chain's orders the venue still works (a paper venue: those the records show resting,
    :func:`carry_paper_orders`). ``venue_positions``: what the venue itself reports
    (``FixVenue.positions``; None: not asked), logged beside them so that a difference is on
    the signed record (:meth:`~zcbench.strategy.StartState.venue_position_problems`)."""
    end = continuation.end
    executions: list[StartExecution] = list(end.unjournaled)
    seen = set(end.exec_ids)
    leaves = {cid: o.leaves_qty for cid, o in end.orders.items()}
    for e in recovered:
        if e.exec_id in seen:
            continue
        seen.add(e.exec_id)
        executions.append(start_execution(e))
        if e.exec_type != "cancel_rejected":
            leaves[e.cl_ord_id] = e.leaves_qty
    positions = end.link.position_map
    for x in executions:
        positions[x.symbol] = positions.get(x.symbol, 0) + x.signed_qty
    name = str(getattr(venue, "name", "none")) if venue is not None else "none"
    open_orders: tuple[StartOrder, ...] = ()
    if name in ("fix", "paper"):  # a paper venue's: carried into the new one (carry_paper)
        open_orders = tuple(
            StartOrder(o.cl_ord_id, o.symbol, o.side, o.quantity, leaves[cid], o.batch,
                       o.signal)
            for cid, o in sorted(end.orders.items()) if leaves.get(cid, 0) > 0
        )
    return StartState(
        venue=name,
        positions=tuple((s, q) for s, q in positions.items() if q),
        open_orders=open_orders,
        orders=end.unjournaled_orders,
        executions=tuple(executions),
        not_acted=end.not_acted,
        venue_positions=None if venue_positions is None else tuple(
            (s, q) for s, q in venue_positions.items() if q),
    )


def check_link(previous: Path, run: Path, *, trust: str | Path = "dev") -> list[str]:
    """The problems in the link from the run ``previous`` to the run ``run`` (empty: the
    chain holds): the boot of ``run`` names the previous run's final checkpoint (origin,
    size, root) and the positions its records carry, and its start state's positions are
    those plus the fills it recovered; where the venue was asked for its positions, they are
    the venue's too."""
    problems: list[str] = []
    try:
        end = read_run_end(previous, trust=trust)
        identity = _boot_identity(Path(run), trust)
        start = read_start_state(Path(run))
    except (VerificationError, DataError) as exc:
        return [str(exc)]
    link = identity.previous
    if link is None:
        return [f"{run} does not continue a run: its boot names no previous run"]
    if (link.origin, link.size, link.root) != (end.origin, end.size, end.root):
        problems.append(
            f"chain broken: {run}'s boot names {link.origin} at size {link.size} (root "
            f"{link.root.hex()[:16]}...), the previous run's final checkpoint is {end.origin} "
            f"at size {end.size} (root {end.root.hex()[:16]}...)"
        )
    if link.positions != end.positions:
        problems.append(
            f"positions carried: {run}'s boot names {dict(link.positions)}, the previous "
            f"run's records hold {dict(end.positions)}"
        )
    problems += _snapshot_link(end, Path(run))
    if start is None:
        from zcbench.host.execution import read_journal

        if read_journal(Path(run)).rows.height:
            problems.append(f"{run} acted without logging the venue's state at start")
        return problems  # killed before its start state: it acted on nothing
    want = dict(link.positions)
    for x in start.executions:
        want[x.symbol] = want.get(x.symbol, 0) + x.signed_qty
    want = {s: q for s, q in want.items() if q}
    if want != start.position_map:
        problems.append(
            f"positions at start: the venue state names {start.position_map}, the carried "
            f"positions and the recovered fills make {want}"
        )
    return problems + venue_position_problems(Path(run), start)


def venue_position_problems(run: Path, start: StartState) -> list[str]:
    """Where the venue's own positions, asked for at the start of ``run`` and logged in its
    start state, differ from those the run started from (the chain's records and the reports
    recovered), one text per symbol; ``zcbench reconcile`` names each ``position_mismatch``."""
    return [f"venue positions at start of {run}: {text}"
            for text in start.venue_position_problems()]


def _snapshot_link(end: RunEnd, run: Path) -> list[str]:
    """A run that keeps snapshots started from the previous run's newest one: its restored
    record (right after its start state) names that record and its SHA-256, so a host cannot
    hand it an older state unseen; its caught_up record, right after, names the same."""
    from zcbench.auditlog.frame import iter_records
    from zcbench.strategy import decode_snapshot_note, is_snapshot_note

    notes = []
    for record, _ in iter_records(run):
        if record.kind == "note" and is_snapshot_note(record.body):
            with contextlib.suppress(DataError):  # a note that merely names the schema
                notes.append((record.index, decode_snapshot_note(record.body)))
    if not notes or end.snapshot is None:
        return []  # its strategy keeps none, or there was none to restore
    index, first = notes[0]
    source = first.source
    if (first.action != "restored" or source is None or index != 2
            or (source.origin, source.size, source.root, source.index)
            != (end.origin, end.size, end.root, end.snapshot.index)
            or first.sha256 != end.snapshot.sha256):
        return [f"snapshot: {run} did not start from the previous run's newest snapshot "
                f"(log index {end.snapshot.index} of {end.origin}): its first snapshot record "
                f"is {first.action} at index {index}"]
    caught = [(i, n) for i, n in notes if n.action == "caught_up"]
    if caught and (caught[0][0] != index + 1 or caught[0][1].source != source):
        return [f"snapshot: {run}'s catch-up (record {caught[0][0]}) is not on the previous "
                f"run's records after the snapshot it restored"]
    return []


def log_start_state(
    conn: Any, log: Any, execution: Any, continuation: Continuation, *, timeout: float = 30.0
) -> StartState:
    """Ask the venue what stands (a FIX venue's session resumed, :meth:`FixVenue.resume`),
    have the enclave log it as the IN record of seq 0 and store and verify that record
    before anything else happens; the execution layer then starts from its positions."""
    from zcbench.channel import ChannelClosed, FrameError, Message
    from zcbench.errors import EnvError

    venue = execution.venue
    recovered: list[Any] = []
    if venue is not None and hasattr(venue, "resume"):
        recovered = list(venue.resume(continuation.end.open_order_ids()))
    if venue is not None and getattr(venue, "name", None) == "paper":
        venue.carry(carry_paper_orders(continuation.end),
                    used_ids=chain_exec_ids(continuation.end))
    # the venue's own book, cross-checked on the record against what the reports make (a
    # venue that can be asked: FixVenue.positions; the paper venue lives in the host)
    ask = getattr(venue, "positions", None)
    asked = ask() if callable(ask) else None
    state = venue_state_at_start(continuation, venue, recovered=recovered,
                                 venue_positions=asked)
    from zcbench.strategy import encode_start

    body = encode_start(state)
    try:
        conn.send(Message("start", {"body": body}))
        reply = conn.recv(timeout=timeout)
    except (ChannelClosed, FrameError, TimeoutError) as exc:
        raise EnvError(f"the enclave did not log the venue's state at start: {exc}") from None
    if reply.type != "start_logged":
        raise EnvError("the enclave did not log the venue's state at start: "
                       f"{reply.fields.get('reason', reply.type)}")
    log.stage_start(body, reply["checkpoint"], time_ns=reply["time_ns"], leaf=reply["leaf"])
    log.flush()
    execution.carry(state.position_map)
    return state


def restore_snapshot(conn: Any, log: Any, run_dir: Path, continuation: Continuation, *,
                     timeout: float = 30.0) -> LoggedSnapshot | None:
    """Hand the enclave the previous run's newest snapshot (right after the start state, for
    a strategy that keeps snapshots), keep a copy of the sealed bytes beside this run, and
    store and verify the ``restored`` record the enclave logs; None when there is none to
    restore. Raises :class:`~zcbench.errors.VerificationError` naming the enclave's reason
    when it refuses the snapshot (another build's, edited, or not the one the log records)."""
    from zcbench.channel import ChannelClosed, FrameError, Message
    from zcbench.durable import write_atomically
    from zcbench.errors import EnvError

    end = continuation.end
    if end.snapshot_behind is not None:
        raise VerificationError(
            f"the run {end.run_dir} was killed before it restored and caught up on the "
            f"strategy's snapshot of {end.snapshot_behind}, so no snapshot of that state is "
            f"proven under its final checkpoint; continue from {end.snapshot_behind} instead",
            check="snapshot_chain")
    snapshot = continuation.snapshot
    if snapshot is None:
        return None
    try:
        conn.send(Message("restore", snapshot.restore_fields()))
        reply = conn.recv(timeout=timeout)
    except (ChannelClosed, FrameError, TimeoutError) as exc:
        raise EnvError(f"the enclave did not restore the strategy's snapshot: {exc}") from None
    if reply.type != "restored":
        raise VerificationError(
            f"the enclave refused the previous run's snapshot {snapshot.path}: "
            f"{reply.fields.get('reason', reply.type)}",
            check=str(reply.fields.get("code", "snapshot")))
    index = log.writer.size
    where = sealed_snapshot_path(run_dir, index)
    where.parent.mkdir(exist_ok=True)
    write_atomically(where, snapshot.sealed, 0o600)  # beside the record, before it is stored
    log.stage_note(reply["body"], reply["checkpoint"], time_ns=reply["time_ns"],
                   leaf=reply["leaf"])
    log.flush()
    return snapshot


def catch_up(conn: Any, log: Any, run_dir: Path, continuation: Continuation, *,
             timeout: float = 30.0) -> int:
    """Right after :func:`restore_snapshot`: hand the enclave the previous run's records after
    the snapshot it restored, up to the final checkpoint the boot names
    (:func:`zcbench.auditlog.snapshots.catch_up_chunks`), keep the sealed state it sends back
    beside this run and store and verify the ``caught_up`` record it logs; the number of
    batches the strategy caught up on. Raises :class:`~zcbench.errors.VerificationError`
    naming the enclave's reason when it refuses them (not that log's records, or the strategy
    signals otherwise than the previous run logged)."""
    from zcbench.auditlog.snapshots import catch_up_chunks
    from zcbench.channel import ChannelClosed, FrameError, Message
    from zcbench.durable import write_atomically
    from zcbench.errors import EnvError

    snapshot = continuation.snapshot
    if snapshot is None:
        return 0
    end = continuation.end
    reply = None
    for chunk in catch_up_chunks(end.run_dir, snapshot):
        try:
            conn.send(Message("catch_up", chunk.fields()))
            reply = conn.recv(timeout=timeout)
        except (ChannelClosed, FrameError, TimeoutError) as exc:
            raise EnvError("the enclave did not catch up on the previous run's batches: "
                           f"{exc}") from None
        if reply.type not in ("catch_up_ack", "caught_up"):
            raise VerificationError(
                f"the enclave refused the records of {end.run_dir} after its snapshot (log "
                f"index {snapshot.index}): {reply.fields.get('reason', reply.type)}",
                check=str(reply.fields.get("code", "catch_up")))
    if reply is None or reply.type != "caught_up":  # the last chunk's answer
        raise EnvError("the enclave did not log its catch-up on the previous run's batches")
    where = sealed_snapshot_path(run_dir, log.writer.size)
    where.parent.mkdir(exist_ok=True)
    write_atomically(where, reply["sealed"], 0o600)  # beside the record, before it is stored
    log.stage_note(reply["body"], reply["checkpoint"], time_ns=reply["time_ns"],
                   leaf=reply["leaf"])
    log.flush()
    return int(reply["batches"])


def carry_paper_orders(end: RunEnd) -> list[Any]:
    """The orders of the chain ending in ``end`` that its records show still resting (a
    quantity left, no cancel or expiry journaled), as a continuing run's paper venue takes them
    (:meth:`zcbench.venue.PaperVenue.carry`), in the order they were placed: each rebuilt from
    the signed signal its ClOrdID names (the OUT record of that batch, in the verified log of
    the run of that id: :func:`chain_folders`, through the verified boot links), with what its fills
    journaled (quantity and notional), the UTC day of its batch's newest event (a ``DAY``
    order's) and, for a stop order, triggered once it filled (a stop-limit that triggered
    without a fill is carried untriggered: no report says it triggered). Raises
    :class:`~zcbench.errors.VerificationError` when a resting order's signal is not found
    in a log that verifies."""
    from zcbench.venue.orders import STOP, STOP_LIMIT, order_from_signal
    from zcbench.venue.paper import DAY_NS, OpenOrder

    resting = {cid: o for cid, o in end.orders.items() if o.leaves_qty > 0}
    if not resting:
        return []
    named = {cid: signal_of_cl_ord_id(cid) for cid in resting}
    needed = {n[0] for n in named.values() if n is not None}
    runs: dict[str, Path] = {}  # run id: folder, this run's and its predecessors' as needed
    fills: dict[str, tuple[int, int]] = {}  # ClOrdID: quantity, notional journaled
    placed: dict[str, tuple[int, int]] = {}  # ClOrdID: run (the oldest first), journal row
    for depth, folder, journal in _journal_chain(end.run_dir):
        if needed <= set(runs):
            break
        runs[str(journal.header.get("run_id", ""))] = folder
        for n, row in enumerate(journal.rows.iter_rows(named=True)):
            cid = str(row["cl_ord_id"])
            if cid not in resting:
                continue
            if row["event"] == "order":
                placed[cid] = (-depth, n)
            elif row["event"] == "fill":
                qty, notional = fills.get(cid, (0, 0))
                fills[cid] = (qty + int(row["quantity"]),
                              notional + int(row["quantity"]) * int(row["price_ticks"]))
    chain, short = chain_folders(end.run_dir, end.origin, end.size, trust=end.trust,
                                 wanted=needed, folders=tuple(runs.values()))
    carried = []
    for cid, o in resting.items():
        name = named[cid]
        if name is None or name[0] not in runs:
            raise VerificationError(
                f"the order {cid} rests per the records of {end.run_dir}, but no run of the "
                "chain placed it; continue from the run that did", check="paper_orders")
        if name[0] not in chain:
            raise VerificationError(f"the log of the run which placed an order still resting "
                                    f"({cid}) is not proven: {short}", check="paper_orders")
        where, size = chain[name[0]]
        out = out_record(where, name[1], size)
        signals = decode_signals(out[0].body) if out is not None else []
        if out is None or name[2] >= len(signals):
            raise VerificationError(f"the order {cid} names a signal the log of {where} does "
                                    "not hold", check="paper_orders")
        found = out[0]
        order = order_from_signal(signals[name[2]], cl_ord_id=cid, log_index=found.index,
                                  signal_pos=name[2])
        if (order.symbol, order.side, order.quantity) != (o.symbol, o.side, o.quantity):
            raise VerificationError(f"the order {cid} of the records is not the signal its "
                                    f"ClOrdID names in the log of {where}", check="paper_orders")
        qty, notional = fills.get(cid, (order.quantity - o.leaves_qty, 0))
        day = (found.event_time_ns or 0) // DAY_NS
        triggered = order.ord_type in (STOP, STOP_LIMIT) and qty > 0
        carried.append((placed.get(cid, (1, 0)), OpenOrder(order, "", qty, notional,
                                                            triggered, day)))
    return [o for _, o in sorted(carried, key=lambda c: (c[0], c[1].order.cl_ord_id))]


def chain_exec_ids(end: RunEnd) -> set[str]:
    """Every ExecID the records of the chain ending in ``end`` hold: its runs' journals and
    start states, walked back through the journals' ``continues`` (a folder no longer there
    ends the walk: its ids are then not known). A continuing run's paper venue numbers its
    ids after them (:meth:`zcbench.venue.PaperVenue.carry`)."""
    from zcbench.auditlog.opening import start_state_of

    ids = set(end.exec_ids) | {e.exec_id for e in end.unjournaled}
    with contextlib.suppress(ZcbenchError):  # no such folder, or records that do not read
        for _, folder, journal in _journal_chain(end.run_dir):
            start = start_state_of(folder)
            ids |= {str(i) for i in journal.rows.get_column("exec_id").to_list() if i}
            ids |= {e.exec_id for e in start.executions} if start is not None else set()
    return ids


def _journal_chain(run_dir: Path) -> Iterator[tuple[int, Path, Any]]:
    """``run_dir``'s journal, then each predecessor's, walked back through the journals'
    ``continues`` (unsigned hints: what is read from them is checked by the caller), with
    their depth; a folder met twice, or 10,000 of them, ends the walk. A journal that does not
    read raises (:func:`zcbench.host.execution.read_journal`)."""
    from zcbench.host.execution import read_journal

    folder: Path | None = Path(run_dir)
    seen: set[Path] = set()
    while folder is not None and folder.resolve() not in seen and len(seen) < 10_000:
        seen.add(folder.resolve())
        journal = read_journal(folder)
        yield len(seen) - 1, folder, journal
        before = journal.header.get("continues")
        folder = Path(before) if isinstance(before, str) and before else None


def _run_id(origin: str) -> str:
    """The run id a log's origin names (its last part), which its ClOrdIDs start with."""
    return origin.rpartition("/")[2]


def chain_folders(
    run_dir: Path, origin: str, size: int, *, trust: str | Path, wanted: Iterable[str],
    folders: Iterable[Path] = (),
) -> tuple[dict[str, tuple[Path, int]], str | None]:
    """The folders of ``run_dir``'s chain, by run id, each with the number of its records
    proven: ``run_dir`` itself (its log verified by the caller, to ``size`` records under
    ``origin``) and its predecessors, walked back through each run's verified boot link
    until every run id in ``wanted`` is found. A predecessor's folder (one of ``folders``, or
    the one its successor's journal names, a hint only) is taken only when its log verifies
    under ``trust`` and its final checkpoint is exactly what the link names (origin, size,
    root), so a signal read from it below that size is the one the chain signed. The second
    item says why the walk stopped short of ``wanted`` (None: every one found)."""
    from zcbench.auditlog import check_log
    from zcbench.auditlog.boot import boot_verifier_for
    from zcbench.auditlog.checkpoint import parse_checkpoint_note
    from zcbench.host.execution import read_journal

    want, folders = set(wanted), [Path(f) for f in folders]
    found = {_run_id(origin): (Path(run_dir), size)}
    finals: dict[Path, tuple[str, int, bytes] | None] = {}

    def final_of(folder: Path) -> tuple[str, int, bytes] | None:
        if folder not in finals:
            finals[folder] = None
            with contextlib.suppress(ZcbenchError, OSError):
                report = check_log(folder, trust=trust, boot_verifier=boot_verifier_for(folder))
                if report.verified and report.latest_checkpoint is not None:
                    c = parse_checkpoint_note(report.latest_checkpoint)
                    finals[folder] = (c.origin, c.size, c.root)
        return finals[folder]

    here = Path(run_dir)
    for _ in range(10_000):
        if want <= set(found):
            return found, None
        try:
            link = _boot_identity(here, trust).previous
        except (DataError, VerificationError) as exc:
            return found, f"the boot of {here} does not verify ({exc})"
        if link is None:
            return found, (f"{here} continues no run, and no run of its chain is "
                           f"{', '.join(sorted(want - set(found)))}")
        hints = []  # the folder the journal names first: it is the one, unless moved
        with contextlib.suppress(ZcbenchError, OSError):
            before = read_journal(here).header.get("continues")
            if isinstance(before, str) and before:
                hints.append(Path(before))
        hints += folders
        match = next((f for f in hints
                      if final_of(f) == (link.origin, link.size, link.root)), None)
        if match is None:
            return found, (f"{here} continues {link.origin}, and no folder at hand holds "
                           f"that run's log verified to the final checkpoint the link names "
                           f"({link.size} records): give that run's folder, as it ended")
        if _run_id(link.origin) in found:
            return found, f"the chain of {run_dir} names {link.origin} twice"
        here = Path(match)
        found[_run_id(link.origin)] = (here, link.size)
    return found, f"the chain of {run_dir} is longer than 10,000 runs"


def out_record(run_dir: Path, seq: int, entries: int) -> tuple[Any, bytes] | None:
    """The OUT record of batch ``seq`` among the first ``entries`` records of the log in
    ``run_dir`` (a log the caller verified to that size), with its leaf hash; None: none."""
    from zcbench.auditlog import RecordFilter
    from zcbench.auditlog.frame import iter_records

    for record, leaf in iter_records(run_dir, RecordFilter(kinds=frozenset({"out"}))):
        if record.index >= entries:
            break
        if record.seq == seq:
            return record, leaf
    return None
