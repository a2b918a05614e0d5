"""The FIX venue simulator: an acceptor on localhost whose venue is the paper venue.

``zcbench venue sim --port N --drop-copy FILE [--data PATH]`` runs :class:`VenueSimulator`. It
replays the same market data as the run (a data file, or the seeded synthetic ticks), by event
time: every request carries the initiator's market time (tag 20004) and the simulator feeds
its :class:`~zcbench.venue.paper.PaperVenue` every event up to that time, inclusive, before it
acts, so a run through FIX fills exactly as the in-process paper venue would.

Every ExecutionReport (and OrderCancelReject) the venue sends is first stored in the session
(``<state>/<SenderCompID>/out.fix``) and appended to the **drop copy** (``FILE``: FIX
messages of a drop-copy session of their own, :class:`DropCopy`, fsynced per message) before
it goes on the wire; resends are not copied again. On start, the ids in an existing drop
copy are read back so ids stay unique (resting orders of an earlier simulator process are
not restored).

A RequestForPositions (``AN``) is answered from the simulator's own book: the account's (the
session's) positions are the sum of the fills in every ExecutionReport it stored for that
session, after the market is advanced to the request's time (an ``AO``, then one ``AP`` per
symbol held; :func:`~zcbench.venue.fix.messages.position_answer`). A resent request
(PossDupFlag=Y) it already answered is ignored: its answer is in the session store.

Requests are idempotent by ClOrdID: a NewOrderSingle whose ClOrdID the venue already knows
and that carries PossDupFlag=Y (a resend after a reconnect) is ignored (its reports are in
the session store, resent on request); without PossDupFlag it is rejected as a repeat.

One connection per session at a time; a garbled or invalid message is answered as the session
layer says and the connection stays up; a client that sends no Logon first is disconnected.
Threads: one accepting, one per connection; one lock around the venue and the sessions.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl

from zcbench.errors import DataError, EnvError
from zcbench.venue.fix.codec import (
    FixMessage,
    Framer,
    GarbledMessage,
    decode,
    encode,
    fix_time,
    iter_messages,
)
from zcbench.venue.fix.messages import (
    SIDE,
    cancel_from_fix,
    execution_fields,
    order_from_fix,
    position_answer,
    replace_from_fix,
)
from zcbench.venue.fix.session import Session, SessionEvent, SessionStore
from zcbench.venue.orders import Execution
from zcbench.venue.paper import PaperVenue

__all__ = ["DROP_COPY_ID", "SIM_COMP_ID", "DropCopy", "VenueSimulator"]

SIM_COMP_ID: Final = "ZCBSIM"
DROP_COPY_ID: Final = "DROPCOPY"
_ID: Final = re.compile(r"S[EO](\d+)")


class DropCopy:
    """The venue's own record: every ExecutionReport (and OrderCancelReject) as FIX, appended
    and fsynced, as a drop-copy session of its own: SenderCompID ``ZCBSIM``, TargetCompID
    :data:`DROP_COPY_ID`, MsgSeqNum 1, 2, 3... without a gap (no session messages in it), so
    a reader can tell when one is missing."""

    def __init__(self, path: Path, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.path = Path(path)
        self._clock = clock
        data = self.path.read_bytes() if self.path.exists() else b""
        self.last_id = 0
        self.last_seq = 0
        for item in iter_messages(data):
            if isinstance(item, GarbledMessage):
                continue
            try:
                msg = decode(item)
            except DataError:
                continue
            for tag in (17, 37):
                m = _ID.fullmatch(msg.get(tag) or "")
                if m:
                    self.last_id = max(self.last_id, int(m.group(1)))
            self.last_seq = max(self.last_seq, msg.seq or 0)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise EnvError(f"cannot open the drop copy {path}: {exc.strerror}") from None

    def append(self, msg_type: str, fields: list[tuple[int, str | int]]) -> bytes:
        """Write one report durably; returns its bytes."""
        seq = self.last_seq + 1
        raw = encode(msg_type, [(49, SIM_COMP_ID), (56, DROP_COPY_ID), (34, seq),
                                (52, fix_time(self._clock())), *fields])
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            raise EnvError(f"writing the drop copy {self.path} failed: {exc}") from None
        self.last_seq = seq
        return raw

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class VenueSimulator:
    """The simulator (module docstring). ``events``: the market data, sorted by ``ts``."""

    def __init__(
        self,
        events: pl.DataFrame,
        drop_copy: Path,
        state: Path,
        *,
        comp_id: str = SIM_COMP_ID,
        heartbeat_s: int = 30,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._events = events
        self._ts = events.get_column("ts").to_numpy() if events.height else np.array([], "int64")
        self._cursor = 0
        self.drop_copy = DropCopy(drop_copy, clock=clock)
        self.venue = PaperVenue(prefix="S", first_id=self.drop_copy.last_id + 1)
        self._state = Path(state)
        self._comp_id = comp_id
        self._heartbeat_s = heartbeat_s
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._connected: dict[str, socket.socket] = {}
        self._owner: dict[str, str] = {}  # ClOrdID -> SenderCompID
        self._answered: set[tuple[str, str]] = set()  # (SenderCompID, PosReqID)
        self.events: list[SessionEvent] = []
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ serving

    def listen(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Bind and listen; returns the port (0 picks a free one)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise EnvError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        sock.listen(16)
        self._listener = sock
        return int(sock.getsockname()[1])

    def serve_forever(self) -> None:
        assert self._listener is not None, "listen() first"
        self._listener.settimeout(0.2)
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t = threading.Thread(target=self._serve_connection, args=(conn,), daemon=True)
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen and serve on a background thread; returns the port."""
        port = self.listen(host, port)
        t = threading.Thread(target=self.serve_forever, daemon=True)
        t.start()
        self._threads.append(t)
        return port

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for conn in self._connected.values():
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            t.join(timeout=5)
        with self._lock:
            for s in self._sessions.values():
                s.store.close()
            self.drop_copy.close()

    def drop(self, comp_id: str) -> None:
        """Cut the connection of ``comp_id`` (tests: a venue that disconnects mid-order)."""
        with self._lock:
            conn = self._connected.get(comp_id)
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    # ------------------------------------------------------------------ one connection

    def _serve_connection(self, conn: socket.socket) -> None:
        framer = Framer()
        session: Session | None = None
        name = ""
        conn.settimeout(1.0)
        idle = 0.0
        try:
            while not self._stopping.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    idle += 1.0
                    if session is not None and idle >= self._heartbeat_s:
                        with self._lock:
                            conn.sendall(session.message("0", []))
                        if idle >= 3 * self._heartbeat_s:
                            return
                    continue
                if not data:
                    return
                idle = 0.0
                for item in framer.feed(data):
                    if session is None:
                        session = self._first(item)
                        if session is None:
                            return
                        name = session.target
                        with self._lock:
                            if name in self._connected:
                                return  # one connection per session
                            self._connected[name] = conn
                    with self._lock:
                        out = self._handle(session, item)
                        for raw in out:
                            conn.sendall(raw)
                    if session.ended:
                        return
        except OSError:
            return
        finally:
            with self._lock:
                if name and self._connected.get(name) is conn:
                    del self._connected[name]
                if session is not None:
                    session.new_connection()
            conn.close()

    def _first(self, item: bytes | GarbledMessage) -> Session | None:
        """The session a connection's first message (a valid Logon to us) opens, or None."""
        if isinstance(item, GarbledMessage):
            return None
        try:
            msg = decode(item)
        except DataError:
            return None
        if msg.msg_type != "A" or msg.get(56) != self._comp_id:
            return None
        sender = msg[49]
        with self._lock:
            session = self._sessions.get(sender)
            if session is None:
                session = Session(
                    SessionStore(self._state / sender),
                    self._comp_id,
                    sender,
                    heartbeat_s=self._heartbeat_s,
                    clock=self._clock,
                )
                session.on_test_request = lambda m: self._on_test_request(m)
                self._sessions[sender] = session
        return session

    def _handle(self, session: Session, item: bytes | GarbledMessage) -> list[bytes]:
        before = len(session.events)
        apps, replies = session.receive(item)
        out = list(replies)
        for msg in apps:
            out += self._app(session, msg)
        self.events += session.events[before:]
        return out

    # ------------------------------------------------------------------ the venue

    def _advance(self, msg: FixMessage) -> list[bytes]:
        market_ns = msg.number(20004, 0)
        end = int(np.searchsorted(self._ts, market_ns, side="right"))
        if end <= self._cursor:
            return []
        frame = self._events.slice(self._cursor, end - self._cursor)
        self._cursor = end
        return self._reports(self.venue.on_market(frame))

    def _on_test_request(self, msg: FixMessage) -> list[bytes]:
        return self._advance(msg)

    def _app(self, session: Session, msg: FixMessage) -> list[bytes]:
        out = self._advance(msg)
        try:
            if msg.msg_type == "D":
                order = order_from_fix(msg)
                if msg.poss_dup and order.cl_ord_id in self._owner:
                    self.events.append(SessionEvent(
                        "duplicate", f"order {order.cl_ord_id} resent: ignored", msg.seq))
                    return out
                self._owner.setdefault(order.cl_ord_id, session.target)
                return out + self._reports(self.venue.submit(order))
            if msg.msg_type == "F":
                request = cancel_from_fix(msg)
                self._owner.setdefault(request.cl_ord_id, session.target)
                return out + self._reports(self.venue.cancel(request))
            if msg.msg_type == "AN":
                key = (session.target, msg[710])
                if msg.poss_dup and key in self._answered:
                    return out
                self._answered.add(key)
                answer = position_answer(msg, session.target, self.positions(session.target))
                return out + [session.message(t, fields) for t, fields in answer]
            if msg.msg_type == "G":
                replace = replace_from_fix(msg)
                if msg.poss_dup and replace.cl_ord_id in self._owner:
                    return out
                self._owner.setdefault(replace.cl_ord_id, session.target)
                return out + self._reports(self.venue.replace(replace))
        except DataError as exc:
            return [*out, session.message("3", [(45, msg.seq or 0), (58, str(exc)[:200])])]
        return [*out, session.message("3", [(45, msg.seq or 0), (373, 11),
                                            (58, f"MsgType {msg.msg_type} not handled")])]

    def positions(self, comp_id: str) -> dict[str, int]:
        """The book of the account ``comp_id``: the fills of every ExecutionReport stored in
        its session (this process's and, read back from the session folder, earlier ones')."""
        session = self._sessions.get(comp_id)
        book: dict[str, int] = {}
        if session is None:
            return book
        sell = SIDE["sell"]
        for msg in session.store.all_sent():
            if msg.msg_type == "8" and msg.get(150) == "F":
                qty = msg.number(32)
                symbol = msg[55]
                book[symbol] = book.get(symbol, 0) + (-qty if msg.get(54) == sell else qty)
        return {s: q for s, q in book.items() if q}

    def _reports(self, executions: list[Execution]) -> list[bytes]:
        """Store, drop-copy and return (to send on the owner's live connection) each report."""
        out: list[bytes] = []
        for e in executions:
            owner = self._owner.get(e.cl_ord_id) or self._owner.get(e.orig_cl_ord_id)
            session = self._sessions.get(owner or "")
            if session is None:
                continue
            msg_type, fields = execution_fields(e)
            raw = session.message(msg_type, fields)
            self.drop_copy.append(msg_type, fields)
            conn = self._connected.get(session.target)
            if conn is not None and session is self._current_sender(conn):
                out.append(raw)
            elif conn is not None:
                with contextlib.suppress(OSError):  # the report is stored: a resend brings it
                    conn.sendall(raw)
        return out

    def _current_sender(self, conn: socket.socket) -> Session | None:
        for name, c in self._connected.items():
            if c is conn:
                return self._sessions.get(name)
        return None
