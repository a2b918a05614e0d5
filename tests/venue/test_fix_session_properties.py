"""The session layer on its own, two sessions in memory: whatever messages are garbled or lost
(a lost one stands for a connection cut under it), every application message is delivered
exactly once and in order once the line is clean again; an invalid message is answered with
a Reject and counted, and the session goes on."""

from __future__ import annotations

import os
import tempfile
from collections import deque
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.venue.fix.codec import decode, encode, iter_messages
from zcbench.venue.fix.session import Session, SessionStore


def _pair(tmp: Path) -> tuple[Session, Session]:
    a = Session(SessionStore(tmp / "a"), "ZCB-A", "ZCBSIM", initiator=True, clock=lambda: 0)
    b = Session(SessionStore(tmp / "b"), "ZCBSIM", "ZCB-A", clock=lambda: 0)
    return a, b


def _order(n: int) -> list[tuple[int, str | int]]:
    return [(11, f"c-{n}-0"), (55, "AAA"), (54, "1"), (38, 1), (40, "1"), (59, "3"),
            (60, "20240102-09:00:00.000")]


def _pump(a: Session, b: Session, wire: deque[tuple[str, bytes]], faults: list[int],
          got: list[str]) -> None:
    """Deliver everything on the wire; ``faults`` (consumed) says per message: 0 deliver,
    1 garble a byte, 2 lose it."""
    steps = 0
    while wire:
        steps += 1
        assert steps < 10_000, "the sessions never settle"
        to, raw = wire.popleft()
        fault = faults.pop(0) if faults else 0
        if fault == 2:
            continue
        if fault == 1:
            i = len(raw) // 2
            raw = raw[:i] + bytes([raw[i] ^ 0x20]) + raw[i + 1 :]
        me, other = (b, "a") if to == "b" else (a, "b")
        apps, replies = me.receive(raw)
        got += [m[11] for m in apps] if to == "b" else []
        wire.extend((other, r) for r in replies)


# the stores fsync every message: on a memory file system where there is one
_FAST_DISK = "/dev/shm" if os.path.isdir("/dev/shm") else None


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.lists(st.integers(0, 2), max_size=40))
def test_exactly_once_in_order_whatever_is_lost(n: int, faults: list[int]) -> None:
    with tempfile.TemporaryDirectory(dir=_FAST_DISK) as folder:
        a, b = _pair(Path(folder))
        wire: deque[tuple[str, bytes]] = deque([("b", a.logon())])
        got: list[str] = []
        _pump(a, b, wire, [], got)
        assert (a.logged_on, b.logged_on) == (True, True)
        for i in range(n):
            wire.append(("b", a.message("D", _order(i))))
            _pump(a, b, wire, faults, got)
        # the line is clean again: the next messages find the gaps, the resends fill them
        for k in range(3):
            wire.append(("b", a.message("1", [(112, f"T{k}")])))
            wire.append(("a", b.message("1", [(112, f"U{k}")])))
            _pump(a, b, wire, [], got)
        assert got == [f"c-{i}-0" for i in range(n)]
        assert (a.next_in, b.next_in) == (b.next_out, a.next_out)
        assert (a.ended, b.ended) == ("", "")


def test_invalid_message_is_rejected_counted_and_the_session_goes_on(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    b.receive(a.logon())
    seq = a.next_out
    bad = encode("D", [(49, "ZCB-A"), (56, "ZCBSIM"), (34, seq), (52, "t"),
                       *[f for f in _order(0) if f[0] != 11]])
    a.next_out += 1  # as if sent
    apps, replies = b.receive(bad)
    assert apps == []
    reject = decode(replies[0])
    assert (reject.msg_type, reject[45], reject[371]) == ("3", str(seq), "11")
    assert "required tag 11" in reject[58]
    apps, replies = b.receive(a.message("D", _order(1)))
    assert [m[11] for m in apps] == ["c-1-0"]  # in sequence after the rejected one
    assert replies == []
    assert [e.kind for e in b.events] == ["invalid"]


def test_state_survives_a_restart_and_a_torn_tail_is_cut(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    b.receive(a.logon())
    for i in range(3):
        b.receive(a.message("D", _order(i)))
    a.store.close()
    b.store.close()
    with (tmp_path / "b" / "in.fix").open("ab") as f:
        f.write(b"8=FIX.4.4\x019=50\x0135=D")  # a crash mid-append
    torn = (tmp_path / "b" / "in.fix").stat().st_size
    a2, b2 = _pair(tmp_path)
    assert (a2.next_out, b2.next_in) == (5, 5)
    data = (tmp_path / "b" / "in.fix").read_bytes()
    assert len(data) == torn - len(b"8=FIX.4.4\x019=50\x0135=D")  # cut back, durably
    assert all(isinstance(m, bytes) for m in iter_messages(data))
