"""FIX over real TCP on localhost: the simulator and the initiator, parity with the paper
venue, and a venue that disconnects mid-order, garbles, repeats, overfills or skips."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from zcbench.venue import Cancel, Execution, Order, PaperVenue, Replace
from zcbench.venue.fix import FixVenue, VenueSimulator, decode
from zcbench.venue.fix.codec import iter_messages
from zcbench.venue.fix.session import Session, read_session_file
from zcbench.venue.orders import EXEC_TYPES

T0 = 1_704_186_000 * 1_000_000_000


def _events(n: int = 40) -> pl.DataFrame:
    rows = []
    for i in range(n):
        mid = 1_000_000 + 100 * ((i * 7) % 11 - 5)
        if i % 3 == 2:
            rows.append({"ts": T0 + i * 1000, "symbol": "AAA", "kind": "trade", "price": mid,
                         "size": 20, "bid": None, "ask": None, "bid_size": None,
                         "ask_size": None})
        else:
            rows.append({"ts": T0 + i * 1000, "symbol": "AAA", "kind": "quote", "price": None,
                         "size": None, "bid": mid - 100, "ask": mid + 100, "bid_size": 15,
                         "ask_size": 25})
    return pl.DataFrame(rows)


def _orders() -> list[Order]:
    return [
        Order("c-1-0", "AAA", "buy", 40),
        Order("c-1-1", "AAA", "sell", 10, "limit", "GTC", limit_price=1_000_300),
        Order("c-3-0", "AAA", "buy", 30, "limit", "DAY", limit_price=999_900),
        Order("c-5-0", "AAA", "sell", 5, "stop", "GTC", stop_price=999_700),
        Order("c-7-0", "AAA", "buy", 60, tif="FOK"),
    ]


class FaultySim(VenueSimulator):
    """The simulator with one injected fault (``fault``), at the first order."""

    fault = ""
    done = False

    def _handle(self, session: Session, item: object) -> list[bytes]:  # type: ignore[override]
        if self.fault == "lose_order" and not self.done and isinstance(item, bytes) \
                and b"\x0135=D\x01" in item:
            self.done = True
            self._kill(session)
            return []
        out = super()._handle(session, item)  # type: ignore[arg-type]
        if self.fault == "drop_after_order" and not self.done and isinstance(item, bytes) \
                and b"\x0135=D\x01" in item:
            self.done = True
            self._kill(session)
            return []
        return out

    def _kill(self, session: Session) -> None:
        conn = self._connected.get(session.target)
        if conn is not None:
            conn.shutdown(socket.SHUT_RDWR)

    def _reports(self, executions: list[Execution]) -> list[bytes]:
        out = super()._reports(executions)
        if not out or self.done:
            return out
        session = self._sessions[self._owner[executions[0].cl_ord_id]]
        e = executions[-1]
        if self.fault == "garble":
            self.done = True
            out[0] = out[0].replace(b"\x0135=8", b"\x0135=9", 1)  # checksum no longer holds
        elif self.fault == "repeat_exec_id":
            self.done = True
            out.append(self._raw(session, e))
        elif self.fault == "unknown_clordid":
            self.done = True
            out.append(self._raw(session, e.but(cl_ord_id="ghost", exec_id="SE9999")))
        elif self.fault == "overfill":
            trade = next(x for x in executions if x.exec_type == "trade")
            self.done = True
            out.append(self._raw(session, trade.but(exec_id="SE9998", cum_qty=trade.order_qty + 5,
                                                    last_qty=5)))
        elif self.fault == "skip_seq":
            self.done = True
            session.next_out += 1  # a sequence number never sent
        return out

    def _raw(self, session: Session, e: Execution) -> bytes:
        from zcbench.venue.fix.messages import execution_fields

        t, fields = execution_fields(e)
        raw = session.message(t, fields)
        self.drop_copy.append(t, fields)
        return raw


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[FaultySim]:
    s = FaultySim(_events(), tmp_path / "drop.fix", tmp_path / "sim-state", heartbeat_s=5)
    s.start()
    yield s
    s.stop()


def _venue(sim: VenueSimulator, tmp_path: Path, name: str = "ZCB-T1") -> FixVenue:
    assert sim._listener is not None
    port = sim._listener.getsockname()[1]
    return FixVenue("127.0.0.1", port, state_dir=tmp_path / name, sender=name, timeout_s=5)


def _drive(venue: object, events: pl.DataFrame) -> list[Execution]:
    out: list[Execution] = []
    orders = iter(_orders())
    for i in range(0, events.height, 4):
        out += venue.on_market(events.slice(i, 4))  # type: ignore[attr-defined]
        if i % 8 == 0:
            o = next(orders, None)
            if o is not None:
                out += venue.submit(o)  # type: ignore[attr-defined]
    far = Order("c-8-0", "AAA", "buy", 10, "limit", "GTC", limit_price=900_000)
    out += venue.submit(far)  # type: ignore[attr-defined]
    out += venue.replace(Replace("c-8-0r", "c-8-0", 12, 910_000))  # type: ignore[attr-defined]
    out += venue.cancel(Cancel("x-1", "c-8-0r"))  # type: ignore[attr-defined]
    out += venue.cancel(Cancel("x-2", "c-8-0r"))  # type: ignore[attr-defined]
    return out


def test_fix_fills_exactly_as_the_paper_venue(sim: FaultySim, tmp_path: Path) -> None:
    paper = _drive(PaperVenue(prefix="S"), _events())
    venue = _venue(sim, tmp_path)
    fix = _drive(venue, _events())
    venue.close()
    assert [e.to_json() for e in fix] == [e.to_json() for e in paper]
    assert {e.exec_type for e in fix} >= {"new", "trade", "canceled", "replaced"}
    # the drop copy holds every report, once, in order
    drop = [decode(m) for m in iter_messages((tmp_path / "drop.fix").read_bytes())]
    assert [m[17] for m in drop] == [e.exec_id for e in fix]  # type: ignore[index]
    assert venue.events == []
    assert venue.reconnections == 0


def _run_one(sim: FaultySim, tmp_path: Path, fault: str) -> tuple[FixVenue, list[Execution]]:
    sim.fault = fault
    venue = _venue(sim, tmp_path)
    out = list(venue.on_market(_events().head(4)))
    out += venue.submit(_orders()[0])
    out += venue.submit(Order("c-9-0", "AAA", "buy", 5, "limit", "GTC", limit_price=900_000))
    venue.close()
    return venue, out


def _drop_ids(tmp_path: Path) -> list[str]:
    return [decode(m)[17] for m in iter_messages((tmp_path / "drop.fix").read_bytes())]  # type: ignore[arg-type, index]


@pytest.mark.parametrize("fault", ["drop_after_order", "lose_order"])
def test_disconnect_mid_order_reconnects_and_sends_once(
    sim: FaultySim, tmp_path: Path, fault: str
) -> None:
    venue, out = _run_one(sim, tmp_path, fault)
    assert venue.reconnections >= 1
    ids = [e.exec_id for e in out]
    assert len(ids) == len(set(ids))  # every report handed over exactly once
    assert sorted(ids) == sorted(_drop_ids(tmp_path))  # and every report of the venue
    news = [e for e in out if e.exec_type == "new"]
    assert [e.cl_ord_id for e in news] == ["c-1-0", "c-9-0"]  # each order once at the venue
    kinds = {ev.kind for ev in [*sim.events, *venue.events]}
    assert {"gap", "resend"} <= kinds  # what one side missed, the other sent again


def test_garbled_report_is_named_and_resent(sim: FaultySim, tmp_path: Path) -> None:
    venue, out = _run_one(sim, tmp_path, "garble")
    kinds = {ev.kind for ev in venue.events}
    assert {"garbled", "gap"} <= kinds
    assert sorted(e.exec_id for e in out) == sorted(_drop_ids(tmp_path))


def test_skipped_sequence_number_is_gap_filled(sim: FaultySim, tmp_path: Path) -> None:
    venue, out = _run_one(sim, tmp_path, "skip_seq")
    assert "gap" in {ev.kind for ev in venue.events}
    assert sorted(e.exec_id for e in out) == sorted(_drop_ids(tmp_path))


def test_repeated_exec_id_counted_once(sim: FaultySim, tmp_path: Path) -> None:
    venue, out = _run_one(sim, tmp_path, "repeat_exec_id")
    assert [ev.kind for ev in venue.events] == ["duplicate"]
    ids = [e.exec_id for e in out]
    assert len(ids) == len(set(ids))
    assert len(_drop_ids(tmp_path)) == len(ids) + 1


def test_unknown_clordid_and_overfill_are_named(sim: FaultySim, tmp_path: Path) -> None:
    venue, out = _run_one(sim, tmp_path, "unknown_clordid")
    assert [ev.kind for ev in venue.events] == ["unknown_order"]
    assert "ghost" in {e.cl_ord_id for e in out}  # recorded, not hidden


def test_overfill_is_named(tmp_path: Path) -> None:
    s = FaultySim(_events(), tmp_path / "drop.fix", tmp_path / "sim-state", heartbeat_s=5)
    s.start()
    try:
        venue, _ = _run_one(s, tmp_path, "overfill")
    finally:
        s.stop()
    assert "overfill" in {ev.kind for ev in venue.events}


def test_garbage_to_the_simulator_keeps_it_serving(sim: FaultySim, tmp_path: Path) -> None:
    assert sim._listener is not None
    port = sim._listener.getsockname()[1]
    junks = (b"\x00" * 100, b"8=FIX.4.4\x019=5\x0135=A\x0110=000\x01", b"GET / HTTP/1.1\r\n\r\n")
    for junk in junks:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(junk)
            c.shutdown(socket.SHUT_WR)
            c.settimeout(5)
            assert c.recv(100) == b""  # no Logon first: disconnected
    _, out = _run_one(sim, tmp_path, "")
    assert out
    assert {e.exec_type for e in out} <= set(EXEC_TYPES)


def test_sequence_numbers_survive_a_restart(sim: FaultySim, tmp_path: Path) -> None:
    _run_one(sim, tmp_path, "")
    first = sim._sessions["ZCB-T1"].next_in
    again = _venue(sim, tmp_path)
    again.on_market(_events().slice(4, 4))
    again.submit(Order("c-10-0", "AAA", "buy", 1))
    again.close()
    assert sim._sessions["ZCB-T1"].next_in > first  # went on, no reset, no gap refused
    assert again.events == []


def test_session_events_are_written_down(sim: FaultySim, tmp_path: Path) -> None:
    import json

    venue, _ = _run_one(sim, tmp_path, "repeat_exec_id")
    lines = (tmp_path / "ZCB-T1" / "events.jsonl").read_text().splitlines()
    assert [json.loads(x)["kind"] for x in lines] == [e.kind for e in venue.events]


def test_run_refuses_a_venue_address_nobody_listens_on() -> None:
    from zcbench.errors import EnvError
    from zcbench.host.options import reachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening
        with pytest.raises(EnvError, match=f"no FIX venue at 127.0.0.1:{port}"):
            reachable("127.0.0.1", port)


def test_a_resumed_session_gets_the_reports_a_killed_one_never_stored(
    sim: FaultySim, tmp_path: Path
) -> None:
    events = _events()
    killed = _venue(sim, tmp_path, "ZCB-R1")
    killed.on_market(events.slice(0, 4))
    rest = Order("r-1-0", "AAA", "buy", 10, "limit", "GTC", limit_price=999_500)
    assert [e.exec_type for e in killed.submit(rest)] == ["new"]  # rests: the ask is higher
    last_sent = killed._ensure().next_out - 1
    killed._disconnect()  # the host dies: no Logout, nothing more read or stored
    assert killed._session is not None
    killed._session.store.close()
    # the market moves on (another session's request carries the time): the order fills at
    # the venue, which stores the report for a session nobody holds
    other = _venue(sim, tmp_path, "ZCB-R2")
    other.on_market(events.slice(8, 8))
    other.submit(Order("o-1-0", "AAA", "buy", 1))
    other.close()
    resumed = FixVenue("127.0.0.1", sim._listener.getsockname()[1],  # type: ignore[union-attr]
                       state_dir=tmp_path / "ZCB-R1-next", sender="ZCB-R1", timeout_s=5,
                       carried=[tmp_path / "ZCB-R1"])
    got = resumed.resume(["r-1-0"])
    resumed.close()
    trades = [e for e in got if e.cl_ord_id == "r-1-0" and e.exec_type == "trade"]
    assert [(e.last_qty, e.last_px) for e in trades] == [(10, 999_500)]
    stored_before = {m.get(17) for m in read_session_file(tmp_path / "ZCB-R1" / "in.fix")}
    assert trades[0].exec_id not in stored_before
    assert _drop_ids(tmp_path).count(trades[0].exec_id) == 1
    sent = [decode(m) for m in iter_messages((tmp_path / "ZCB-R1-next" / "out.fix").read_bytes())]
    assert sent[0].seq == last_sent + 1  # the carried numbers go on: no reset, no reuse
    assert not [e for e in resumed.events if e.kind in ("too_low", "invalid")]
