"""The FIX 4.4 session layer: sequence numbers that survive crashes, resend, gap fill, logon,
heartbeats, logout. Transport-free: it turns received bytes into application messages and
replies; the simulator and the initiator move the bytes.

**Persisted state** (:class:`SessionStore`, one folder per session): ``out.fix`` holds every
message sent and ``in.fix`` every message accepted in sequence, each appended and fsynced
before it is sent or acted on. The next sequence numbers are read back from them on open (a
torn last message, from a crash mid-write, is cut away durably), so a restarted side resumes
the session where it stood and can resend anything it sent.

**Receiving** (:meth:`Session.receive`): a garbled frame is ignored and recorded (the gap it
leaves is resent); a whole but invalid message is answered with Reject ``3`` and counted; a
sequence number above the expected one is a gap, answered with a ResendRequest ``2`` (the
message is dropped: the resend brings it again), once per gap, and again when a newer message
shows that the request or its answer was lost; one below is a duplicate, ignored when
PossDupFlag is set and fatal otherwise (Logout, as FIX says). In sequence: TestRequest is
answered by a Heartbeat, ResendRequest by the stored messages (application ones again with
PossDupFlag=Y and OrigSendingTime, session ones as one SequenceReset-GapFill), SequenceReset
moves the expected number, Logout is answered and ends the session, application messages are
returned to the caller, exactly once.

Every problem is a :class:`SessionEvent` in :attr:`Session.events`, named: ``garbled``,
``invalid``, ``gap``, ``duplicate``, ``too_low``, ``resend``, ``reject_received``.

Time comes in as ``clock`` (nanoseconds); nothing here reads the wall clock itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from zcbench.errors import DataError, EnvError, UsageError
from zcbench.venue.fix.codec import (
    FixMessage,
    GarbledMessage,
    InvalidMessage,
    decode,
    encode,
    fix_time,
    iter_messages,
)

__all__ = ["ADMIN", "CARRIED_FILE", "Session", "SessionEvent", "SessionStore",
           "read_session_file"]

CARRIED_FILE: Final = "carried.json"
"""In a session folder that continues earlier ones: their folders, oldest first, and the
SenderCompID (``{"sender": ..., "folders": [...]}``), written before the first message."""

ADMIN: Final = frozenset({"A", "0", "1", "2", "3", "4", "5"})
_MAX_RESEND: Final = 100_000


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Journal:
    """An append-only file of FIX messages, fsynced per append; torn tail cut on open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[FixMessage] = []
        data = path.read_bytes() if path.exists() else b""
        good = 0
        for item in iter_messages(data):
            if isinstance(item, GarbledMessage):
                break
            try:
                msg = decode(item)
            except DataError:
                break
            self.messages.append(msg)
            good += len(item)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            if good != len(data):
                os.ftruncate(self._fd, good)  # a torn tail from a crash mid-append
                os.fsync(self._fd)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise EnvError(f"cannot open the FIX session file {path}: {exc.strerror}") from None
        self.cut = len(data) - good

    def append(self, raw: bytes, msg: FixMessage) -> None:
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            raise EnvError(f"writing the FIX session file {self.path} failed: {exc}") from None
        self.messages.append(msg)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_session_file(path: Path) -> list[FixMessage]:
    """The whole messages of a session file (``out.fix``, ``in.fix``), read only: a torn tail
    (a crash mid-append) ends the list and is left on disk."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise EnvError(f"cannot read the FIX session file {path}: {exc.strerror}") from None
    out: list[FixMessage] = []
    for item in iter_messages(data):
        if isinstance(item, GarbledMessage):
            break
        try:
            out.append(decode(item))
        except DataError:
            break
    return out


class SessionStore:
    """A session's persisted state in ``folder`` (module docstring). ``carried``: session
    folders this one continues, oldest first (a restarted host's new run folder continuing
    the previous run's session): their messages are read, never written, and count for the
    sequence numbers and resends; what is sent and received now goes to ``folder``."""

    def __init__(self, folder: Path, *, carried: Sequence[Path] = ()) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EnvError(f"cannot make the FIX session folder {folder}: {exc}") from None
        self.carried = tuple(Path(f) for f in carried)
        self.carried_sent: list[FixMessage] = []
        self.carried_received: list[FixMessage] = []
        for old in self.carried:
            self.carried_sent += read_session_file(old / "out.fix")
            self.carried_received += read_session_file(old / "in.fix")
        self.sent = _Journal(self.folder / "out.fix")
        self.received = _Journal(self.folder / "in.fix")

    def all_sent(self) -> list[FixMessage]:
        """Every message this session sent, carried ones first."""
        return self.carried_sent + self.sent.messages

    def all_received(self) -> list[FixMessage]:
        """Every message this session accepted, carried ones first."""
        return self.carried_received + self.received.messages

    @property
    def next_out(self) -> int:
        sent = self.sent.messages or self.carried_sent
        return (sent[-1].seq or 0) + 1 if sent else 1

    @property
    def next_in(self) -> int:
        received = self.received.messages or self.carried_received
        if not received:
            return 1
        last = received[-1]
        nxt = (last.seq or 0) + 1
        if last.msg_type == "4":
            nxt = max(nxt, last.number(36))
        return nxt

    def close(self) -> None:
        self.sent.close()
        self.received.close()


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A named problem (or resend) the session met, with the sequence number when known."""

    kind: str
    detail: str
    seq: int | None = None


@dataclass
class Session:
    """One side of a FIX session (module docstring)."""

    store: SessionStore
    sender: str
    target: str
    heartbeat_s: int = 30
    clock: Callable[[], int] = time.time_ns
    events: list[SessionEvent] = field(default_factory=list)
    initiator: bool = False
    on_test_request: Callable[[FixMessage], list[bytes]] | None = None
    logged_on: bool = False
    ended: str = ""
    last_heartbeat_id: str = ""
    _resend_trigger: int = 0  # the highest MsgSeqNum a ResendRequest was sent for
    _logout_sent: bool = False

    def __post_init__(self) -> None:
        for name in (self.sender, self.target):
            if not name or not name.replace("-", "").isalnum() or len(name) > 32:
                raise UsageError(f"FIX CompID {name!r}: 1 to 32 letters, digits or '-'")
        self.next_out = self.store.next_out
        self.next_in = self.store.next_in

    def new_connection(self) -> None:
        """Forget the last connection's logon and logout (not the sequence numbers)."""
        self.logged_on = False
        self.ended = ""
        self._logout_sent = False
        self._resend_trigger = 0

    # ------------------------------------------------------------------ sending

    def message(self, msg_type: str, body: list[tuple[int, str | int]]) -> bytes:
        """A new message with the next sequence number, stored durably before it is returned
        (the caller sends it)."""
        seq = self.next_out
        raw = encode(msg_type, [(49, self.sender), (56, self.target), (34, seq),
                                (52, fix_time(self.clock())), *body])
        self.store.sent.append(raw, decode(raw))
        self.next_out = seq + 1
        return raw

    def logon(self) -> bytes:
        return self.message("A", [(98, 0), (108, self.heartbeat_s)])

    def logout(self, text: str = "") -> bytes:
        self._logout_sent = True
        return self.message("5", [(58, text)] if text else [])

    def _resend(self, begin: int, end: int) -> list[bytes]:
        """The stored messages ``begin..end`` (0: to the last sent) for a ResendRequest."""
        last = self.next_out - 1
        end = last if end == 0 or end > last else end
        if begin < 1 or begin > end + 1 or end - begin > _MAX_RESEND:
            return []
        out: list[bytes] = []
        gap_start: int | None = None
        by_seq = {m.seq: m for m in self.store.all_sent() if m.seq is not None}

        def flush_gap(upto: int) -> None:
            nonlocal gap_start
            if gap_start is not None:
                out.append(self._gap_fill(gap_start, upto))
                gap_start = None

        for seq in range(begin, end + 1):
            old = by_seq.get(seq)
            if old is None or old.msg_type in ADMIN:
                if gap_start is None:
                    gap_start = seq
                continue
            flush_gap(seq)
            body = [(t, v) for t, v in old.fields if t not in (49, 56, 34, 52, 43, 97, 122)]
            out.append(encode(old.msg_type, [(49, self.sender), (56, self.target), (34, seq),
                                             (43, "Y"), (52, fix_time(self.clock())),
                                             (122, old[52]), *body]))
        flush_gap(end + 1)
        self.events.append(SessionEvent("resend", f"messages {begin}..{end} sent again", begin))
        return out

    def _gap_fill(self, seq: int, new_seq: int) -> bytes:
        # a gap fill reuses the sequence number it replaces and is not stored again
        return encode("4", [(49, self.sender), (56, self.target), (34, seq), (43, "Y"),
                            (52, fix_time(self.clock())), (123, "Y"), (36, new_seq)])

    # ------------------------------------------------------------------ receiving

    def receive(self, item: bytes | GarbledMessage) -> tuple[list[FixMessage], list[bytes]]:
        """Handle one framed item: the application messages to act on (in sequence, exactly
        once) and the replies to send, in order."""
        if isinstance(item, GarbledMessage):
            self.events.append(SessionEvent("garbled", str(item)))
            return [], []
        try:
            msg = decode(item)
        except GarbledMessage as exc:
            self.events.append(SessionEvent("garbled", str(exc)))
            return [], []
        except InvalidMessage as exc:
            return self._invalid(item, exc)
        return self._in_sequence(msg)

    def _invalid(self, raw: bytes, exc: InvalidMessage) -> tuple[list[FixMessage], list[bytes]]:
        seq = exc.ref_seq
        self.events.append(SessionEvent("invalid", str(exc), seq))
        if seq is None or seq != self.next_in:
            return [], []  # no usable sequence number: treat like a garbled frame
        # counted, so the sequence goes on; stored as a gap fill over its number
        self._accept(encode("4", [(49, self.target), (56, self.sender), (34, seq),
                                  (52, fix_time(self.clock())), (123, "Y"), (36, seq + 1)]))
        body: list[tuple[int, str | int]] = [(45, seq), (58, str(exc)[:200])]
        if exc.ref_tag is not None:
            body.append((371, exc.ref_tag))
        if exc.msg_type:
            body.append((372, exc.msg_type))
        return [], [self.message("3", body)]

    def _accept(self, raw: bytes) -> FixMessage:
        msg = decode(raw)
        self.store.received.append(raw, msg)
        self.next_in = self.store.next_in
        return msg

    def _in_sequence(self, msg: FixMessage) -> tuple[list[FixMessage], list[bytes]]:
        seq = msg.number(34)
        if msg.get(49) != self.target or msg.get(56) != self.sender:
            self.events.append(SessionEvent(
                "invalid", f"CompIDs {msg.get(49)}->{msg.get(56)}, expected "
                f"{self.target}->{self.sender}", seq))
            self.ended = "wrong CompIDs"
            return [], [self.logout("wrong CompIDs")]
        replies: list[bytes] = []
        if msg.msg_type == "A":
            if msg.get(141) == "Y":
                self.ended = "ResetSeqNumFlag is not supported: sequence numbers last the session"
                return [], [self.logout(self.ended)]
            replies += self._on_logon(msg)
        if msg.msg_type == "4" and msg.get(123) != "Y":
            new = msg.number(36)
            if new > self.next_in:
                self._accept(msg.raw)
                self.next_in = new
            return [], replies
        if seq > self.next_in:
            self.events.append(SessionEvent(
                "gap", f"MsgSeqNum {seq}, expected {self.next_in}", seq))
            if msg.msg_type == "2":
                replies += self._resend(msg.number(7), msg.number(16))
            # once per gap; again when a newer new message shows the request (or its answer)
            # was lost: a ResendRequest is a session message, gap-filled, never resent; not
            # for each resent message (PossDupFlag), which would ask for the range again
            # and again
            if seq > self._resend_trigger and (not msg.poss_dup or not self._resend_trigger):
                self._resend_trigger = seq
                replies.append(self.message("2", [(7, self.next_in), (16, 0)]))
            return [], replies
        if seq < self.next_in:
            if msg.poss_dup:
                self.events.append(SessionEvent("duplicate", f"MsgSeqNum {seq} again", seq))
                return [], replies
            self.events.append(SessionEvent(
                "too_low", f"MsgSeqNum {seq} below the expected {self.next_in}", seq))
            self.ended = f"MsgSeqNum {seq} too low, expected {self.next_in}"
            return [], [*replies, self.logout(self.ended)]
        self._accept(msg.raw)
        if msg.msg_type in ADMIN:
            return [], replies + self._admin(msg)
        return [msg], replies

    def _on_logon(self, msg: FixMessage) -> list[bytes]:
        if self.logged_on:
            return []
        self.logged_on = True
        return [] if self.initiator else [self.logon()]

    def _admin(self, msg: FixMessage) -> list[bytes]:
        t = msg.msg_type
        if t == "1":
            before = self.on_test_request(msg) if self.on_test_request is not None else []
            return [*before, self.message("0", [(112, msg[112])])]
        if t == "0":
            self.last_heartbeat_id = msg.get(112) or ""
            return []
        if t == "2":
            return self._resend(msg.number(7), msg.number(16))
        if t == "4":
            new = msg.number(36)
            if new < self.next_in:
                self.events.append(SessionEvent("invalid", f"gap fill back to {new}", msg.seq))
            return []
        if t == "3":
            self.events.append(SessionEvent("reject_received", msg.get(58, "") or "", msg.seq))
            return []
        if t == "5":
            out = [] if self.ended or self._logout_sent else [self.logout()]
            self.ended = self.ended or (msg.get(58) or "logout")
            return out
        return []
