"""The FIX initiator the execution layer uses: :class:`FixVenue`, a :class:`~zcbench.host.
execution.Venue` over one FIX 4.4 session on TCP.

Synchronous and driven by the caller (no thread of its own): each request is sent, then a
TestRequest with a fresh TestReqID and the market time (tag 20004); the simulator answers in
order, so once the Heartbeat with that TestReqID arrives every report the request caused has
arrived too. :meth:`FixVenue.on_market` does the same, while orders rest, so fills of resting
orders come back batch by batch.

A broken connection (reset, end of stream, no answer within ``timeout_s``) is reconnected
(``reconnects`` times at most, backing off) and logged on again with the persisted sequence
numbers: the simulator asks for what it missed (the order goes again with PossDupFlag=Y, and
the simulator ignores a ClOrdID it already has), and this side asks for the reports it
missed. Every report is handed to the caller exactly once: reports are accepted only in
sequence, and an ExecID seen before (kept in the session's ``in.fix``) is dropped and
recorded as an event. :meth:`FixVenue.positions` asks the venue for the account's positions
(RequestForPositions, answered by an ``AO`` and its ``AP`` reports, held to the answer's rules
by :func:`~zcbench.venue.fix.messages.positions_from_fix`). Every event (garbled, invalid,
gap, duplicate, unknown_order,
overfill, resend...) is also appended to ``events.jsonl`` in the session folder. The session
folder is made at the first connection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import polars as pl

from zcbench.errors import DataError, EnvError, UsageError
from zcbench.venue.fix.codec import FixMessage, Framer
from zcbench.venue.fix.messages import (
    cancel_fields,
    execution_from_fix,
    order_fields,
    order_from_fix,
    position_request_fields,
    positions_from_fix,
    replace_fields,
)
from zcbench.venue.fix.session import CARRIED_FILE, Session, SessionEvent, SessionStore
from zcbench.venue.fix.sim import SIM_COMP_ID
from zcbench.venue.orders import Cancel, Execution, Order, Replace

__all__ = ["FixVenue", "parse_venue_url"]

_BACKOFF_S: Final = (0.05, 0.1, 0.2, 0.5, 1.0)


def parse_venue_url(url: str) -> tuple[str, int]:
    """``fix://HOST:PORT`` as (host, port), or a :class:`~zcbench.errors.UsageError`."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "fix" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise UsageError(f"--venue must be paper or fix://HOST:PORT, got {url!r}")
    return parts.hostname, port


class FixVenue:
    """A venue over FIX (module docstring)."""

    name = "fix"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        state_dir: Path,
        sender: str,
        target: str = SIM_COMP_ID,
        heartbeat_s: int = 30,
        timeout_s: float = 10.0,
        reconnects: int = 20,
        clock: Callable[[], int] = time.time_ns,
        carried: Sequence[Path] = (),
    ) -> None:
        self.host, self.port = host, port
        self._carried = tuple(Path(f) for f in carried)
        self._state_dir = Path(state_dir)
        self._sender, self._target = sender, target
        self._heartbeat_s = heartbeat_s
        self._timeout_s = timeout_s
        self._reconnects = reconnects
        self._clock = clock
        self._session: Session | None = None
        self._sock: socket.socket | None = None
        self._framer = Framer()
        self._seen: set[str] = set()
        self._open: dict[str, Order] = {}
        self._orders: dict[str, Order] = {}
        self._market_ns = 0
        self._sync_n = 0
        self._pending: list[Execution] = []
        self._position_answers: list[FixMessage] = []
        self.reconnections = 0
        self.events: list[SessionEvent] = []
        self._written = 0

    # ------------------------------------------------------------------ Venue

    def on_market(self, events: pl.DataFrame) -> Sequence[Execution]:
        if "ts" in events.columns and events.height:
            top = events.get_column("ts").max()
            if top is not None:
                self._market_ns = max(self._market_ns, int(top))  # type: ignore[arg-type]
        if not self._open:
            return []
        return self._request(None)

    def submit(self, order: Order) -> Sequence[Execution]:
        self._orders[order.cl_ord_id] = order
        return self._request(("D", order_fields(order, market_ns=self._market_ns)))

    def cancel(self, request: Cancel) -> Sequence[Execution]:
        order = self._orders.get(request.orig_cl_ord_id)
        if order is None:
            raise UsageError(f"cancel of {request.orig_cl_ord_id}: no such order was sent")
        self._orders[request.cl_ord_id] = order
        return self._request(("F", cancel_fields(request, order, market_ns=self._market_ns)))

    def replace(self, request: Replace) -> Sequence[Execution]:
        order = self._orders.get(request.orig_cl_ord_id)
        if order is None:
            raise UsageError(f"replace of {request.orig_cl_ord_id}: no such order was sent")
        self._orders[request.cl_ord_id] = dataclasses.replace(
            order, cl_ord_id=request.cl_ord_id, quantity=request.quantity
        )
        return self._request(("G", replace_fields(request, order, market_ns=self._market_ns)))

    def resting(self) -> bool:
        """Whether an order of this session is open at the venue (its reports may still come)."""
        return bool(self._open)

    def open_orders(self) -> list[Order]:
        return list(self._open.values())

    def resume(self, open_orders: Sequence[str] = ()) -> list[Execution]:
        """Continue the carried session (a restarted host's new run): log on with the carried
        sequence numbers, so the venue resends every report this side never stored and this
        side resends what the venue never got, and sync; returns those reports, in order.
        ``open_orders``: ClOrdIDs of the earlier runs' orders still working at the venue
        (their later fills come back batch by batch)."""
        self._ensure()
        for cid in open_orders:
            if cid in self._orders:
                self._open[cid] = self._orders[cid]
        return self._request(None)

    def positions(self) -> dict[str, int]:
        """The venue's own positions of this session's account (symbol: signed quantity, no
        zero), as of the market time reached: a RequestForPositions, its answer held to the
        rules of :func:`~zcbench.venue.fix.messages.positions_from_fix` (an answer that breaks
        them is an :class:`~zcbench.venue.fix.codec.InvalidMessage`, recorded as an event).
        Reports that arrive meanwhile are kept for the next request to return."""
        session = self._ensure()
        req_id = f"POS-{session.next_out}"  # sequence numbers never repeat in a session
        fields = position_request_fields(req_id, account=self._sender,
                                         market_ns=self._market_ns)
        self._position_answers = []
        reports = self._request(("AN", fields))
        self._pending = reports + self._pending
        answer = [m for m in self._position_answers if m.get(710) == req_id]
        for m in self._position_answers:
            if m.get(710) != req_id:
                self.events.append(SessionEvent(
                    "invalid", f"{m.msg_type} answers position request {m.get(710)!r}, "
                    f"not {req_id}", m.seq))
        self._position_answers = []
        try:
            return positions_from_fix(req_id, self._sender, answer)
        except DataError as exc:
            self.events.append(SessionEvent("invalid", str(exc), None))
            self._write_events()
            raise

    def close(self) -> None:
        """Log out (when connected) and close; the session folder keeps its state."""
        if self._sock is not None and self._session is not None:
            try:
                self._sock.sendall(self._session.logout())
                self._read_until(lambda: bool(self._session and self._session.ended), 2.0)
            except (OSError, EnvError):
                pass
        self._disconnect()
        if self._session is not None:
            self._session.store.close()
            self._session = None

    # ------------------------------------------------------------------ the session

    def _ensure(self) -> Session:
        if self._session is None:
            if self._carried:
                self._write_carried()
            store = SessionStore(self._state_dir, carried=self._carried)
            self._session = Session(store, self._sender, self._target,
                                    heartbeat_s=self._heartbeat_s, clock=self._clock,
                                    initiator=True)
            for msg in store.all_received():
                if msg.msg_type in ("8", "9") and msg.get(17):
                    self._seen.add(msg[17])
            for msg in store.carried_sent:
                if msg.msg_type == "D":
                    with contextlib.suppress(DataError):
                        order = order_from_fix(msg)
                        self._orders.setdefault(order.cl_ord_id, order)
        return self._session

    def _write_carried(self) -> None:
        from zcbench.durable import write_atomically

        path = self._state_dir / CARRIED_FILE
        doc = {"sender": self._sender, "folders": [str(f.resolve()) for f in self._carried]}
        try:
            self._state_dir.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                write_atomically(path, (json.dumps(doc, sort_keys=True) + "\n").encode())
        except OSError as exc:
            raise EnvError(f"cannot write {path}: {exc.strerror or exc}") from None

    def _connect(self) -> None:
        session = self._ensure()
        last: OSError | None = None
        for attempt in range(self._reconnects + 1):
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self._timeout_s)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._sock = sock
                self._framer = Framer()
                session.new_connection()
                sock.sendall(session.logon())
                self._read_until(lambda: session.logged_on, self._timeout_s)
                return
            except (OSError, EnvError) as exc:
                last = exc if isinstance(exc, OSError) else OSError(str(exc))
                self._disconnect()
                time.sleep(_BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)])
        raise EnvError(
            f"the FIX venue at {self.host}:{self.port} does not answer "
            f"({last}); is 'zcbench venue sim --port {self.port}' running?"
        )

    def _disconnect(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _request(self, message: tuple[str, list[tuple[int, str | int]]] | None) -> list[Execution]:
        """Send ``message`` (once: a resend is the session's business) and sync."""
        session = self._ensure()
        sent = False
        for attempt in range(self._reconnects + 1):
            try:
                if self._sock is None:
                    if attempt:
                        self.reconnections += 1
                    self._connect()
                assert self._sock is not None
                if message is not None and not sent:
                    raw = session.message(*message)  # durable before it is sent
                    sent = True
                    self._sock.sendall(raw)
                self._sync(session)
                out, self._pending = self._pending, []
                self._write_events()
                return out
            except (OSError, EnvError):
                self._disconnect()
                if attempt:
                    time.sleep(_BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)])
        raise EnvError(f"the FIX venue at {self.host}:{self.port} was lost and did not come back")

    def _write_events(self) -> None:
        """Append the session events met since the last call to ``events.jsonl`` in the
        session folder (fsynced): a run's record of what its venue did wrong."""
        new, self._written = self.events[self._written :], len(self.events)
        if not new:
            return
        lines = "".join(
            json.dumps({"kind": e.kind, "detail": e.detail, "seq": e.seq}, sort_keys=True) + "\n"
            for e in new
        )
        try:
            fd = os.open(self._state_dir / "events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                         0o644)
            try:
                os.write(fd, lines.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise EnvError(f"cannot write {self._state_dir / 'events.jsonl'}: {exc}") from None

    def _sync(self, session: Session) -> None:
        """Until the simulator has answered everything sent so far. A Heartbeat lost in a gap
        is gap-filled, not resent, so a sync unanswered for a while is asked again before
        the connection is given up."""
        assert self._sock is not None
        ids: set[str] = set()
        for _ in range(3):
            self._sync_n += 1
            ids.add(f"SYNC-{self._sync_n}")
            self._sock.sendall(session.message("1", [(112, f"SYNC-{self._sync_n}"),
                                                      (20004, self._market_ns)]))
            try:
                self._read_until(lambda: session.last_heartbeat_id in ids, self._timeout_s / 3)
                return
            except TimeoutError:
                continue
        raise EnvError(f"no answer from the FIX venue within {self._timeout_s:g} s")

    def _read_until(self, done: Callable[[], bool], timeout_s: float) -> None:
        session = self._ensure()
        deadline = time.monotonic() + timeout_s
        while not done():
            if self._sock is None:
                raise EnvError("not connected")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from the FIX venue within {timeout_s:g} s")
            self._sock.settimeout(left)
            data = self._sock.recv(65536)
            if not data:
                raise EnvError("the FIX venue closed the connection")
            for item in self._framer.feed(data):
                before = len(session.events)
                apps, replies = session.receive(item)
                self.events += session.events[before:]
                for raw in replies:
                    self._sock.sendall(raw)
                for msg in apps:
                    self._deliver(msg)
                if session.ended and not done():
                    raise EnvError(f"the FIX venue ended the session: {session.ended}")

    def _deliver(self, msg: FixMessage) -> None:
        if msg.msg_type in ("AO", "AP"):
            self._position_answers.append(msg)
            return
        if msg.msg_type not in ("8", "9"):
            self.events.append(SessionEvent("invalid", f"unexpected MsgType {msg.msg_type}",
                                            msg.seq))
            return
        try:
            e = execution_from_fix(msg)
        except DataError as exc:
            self.events.append(SessionEvent("invalid", str(exc), msg.seq))
            return
        if e.exec_id in self._seen:
            self.events.append(SessionEvent("duplicate", f"ExecID {e.exec_id} again: dropped",
                                            msg.seq))
            return
        self._seen.add(e.exec_id)
        order = self._orders.get(e.cl_ord_id)
        if order is not None and e.cum_qty > order.quantity:
            self.events.append(SessionEvent(
                "overfill", f"ExecID {e.exec_id}: CumQty {e.cum_qty} over the order's "
                f"{order.quantity} ({e.cl_ord_id})", msg.seq))
        if order is None and e.exec_type != "cancel_rejected":
            self.events.append(SessionEvent("unknown_order",
                                            f"ExecID {e.exec_id} for unknown ClOrdID "
                                            f"{e.cl_ord_id}", msg.seq))
        if e.exec_type == "replaced" and e.orig_cl_ord_id in self._open:
            self._open[e.cl_ord_id] = self._open.pop(e.orig_cl_ord_id)
        if e.leaves_qty > 0 and order is not None:
            self._open[e.cl_ord_id] = order
        elif e.exec_type != "cancel_rejected":
            self._open.pop(e.cl_ord_id, None)
            if e.orig_cl_ord_id:
                self._open.pop(e.orig_cl_ord_id, None)
        self._pending.append(e)
