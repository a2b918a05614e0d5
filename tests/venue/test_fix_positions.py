"""Positions from the venue: FIX 4.4 RequestForPositions (AN), RequestForPositionsAck (AO) and
PositionReport (AP) against the real acceptor on localhost, strict reading of the answer, and
a continuing run's start state holding the venue's answer beside the positions its records
make, with a difference named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.venue.support import fix_events, fix_venue
from zcbench.errors import DataError
from zcbench.strategy import StartState, decode_start, encode_start
from zcbench.venue import Execution, Order
from zcbench.venue.fix import FixVenue, VenueSimulator, decode, encode
from zcbench.venue.fix.codec import FixMessage, InvalidMessage
from zcbench.venue.fix.messages import (
    position_answer,
    position_request_fields,
    positions_from_fix,
)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[VenueSimulator]:
    s = VenueSimulator(fix_events(), tmp_path / "drop.fix", tmp_path / "sim-state",
                       heartbeat_s=5)
    s.start()
    yield s
    s.stop()


def _venue(sim: VenueSimulator, tmp_path: Path, name: str = "ZCB-T1") -> FixVenue:
    return fix_venue(sim, tmp_path, name)


def _drive(venue: FixVenue) -> list[Execution]:
    """Orders that fill (a buy, a sell, a resting limit buy that fills later) over the
    market, batch by batch."""
    orders = iter([Order("c-1-0", "AAA", "buy", 40), Order("c-2-0", "AAA", "sell", 10),
                   Order("c-3-0", "AAA", "buy", 30, "limit", "GTC", limit_price=1_000_000)])
    out: list[Execution] = []
    events = fix_events()
    for i in range(0, events.height, 4):
        out += venue.on_market(events.slice(i, 4))
        if i % 8 == 0 and (o := next(orders, None)) is not None:
            out += venue.submit(o)
    return out


def _fills(executions: list[Execution]) -> dict[str, int]:
    book: dict[str, int] = {}
    for e in executions:
        if e.exec_type == "trade":
            book[e.symbol] = book.get(e.symbol, 0) + e.signed_qty
    return {s: q for s, q in book.items() if q}


def test_the_venue_answers_positions_from_its_own_book(sim: VenueSimulator, tmp_path: Path) -> None:
    venue = _venue(sim, tmp_path)
    assert venue.positions() == {}  # flat: an AO with PosReqResult 2 and no report
    executions = _drive(venue)
    held = _fills(executions)
    assert held  # the orders filled: a position to report
    assert venue.positions() == held
    assert venue.events == []
    # another account (session) has its own book
    other = _venue(sim, tmp_path, "ZCB-T2")
    other.on_market(fix_events().head(4))
    bought = other.submit(Order("o-1-0", "AAA", "buy", 3))
    assert other.positions() == _fills(list(bought)) == {"AAA": 3}
    other.close()
    assert venue.positions() == held
    venue.close()
    # what went over the wire: one AN per request, answered by an AO and one AP per symbol
    sent = [decode(m) for m in _session_file(tmp_path / "sim-state" / "ZCB-T1" / "out.fix")]
    assert [m.msg_type for m in sent if m.msg_type in ("AO", "AP")] == ["AO", "AO", "AP", "AO",
                                                                        "AP"]
    # a restarted simulator reads its book back from its session folders
    sim.stop()
    again = VenueSimulator(fix_events(), tmp_path / "drop.fix", tmp_path / "sim-state",
                           heartbeat_s=5)
    again.start()
    try:
        resumed = _venue(again, tmp_path)
        assert resumed.positions() == held
        resumed.close()
    finally:
        again.stop()


def _session_file(path: Path) -> list[bytes]:
    from zcbench.venue.fix.codec import iter_messages

    return [m for m in iter_messages(path.read_bytes()) if isinstance(m, bytes)]


def _request(req_id: str = "POS-7", account: str = "ACC") -> FixMessage:
    return decode(encode("AN", [(49, account), (56, "ZCBSIM"), (34, 7),
                                (52, "20240102-09:00:00.000"),
                                *position_request_fields(req_id, account=account,
                                                         market_ns=1_704_186_000 * 10**9)]))


def _answer(positions: dict[str, int], *, request: FixMessage | None = None,
            account: str = "ACC") -> list[FixMessage]:
    req = request or _request()
    return [decode(encode(t, [(49, "ZCBSIM"), (56, "ACC"), (34, 10 + k),
                              (52, "20240102-09:00:00.000"), *fields]))
            for k, (t, fields) in enumerate(position_answer(req, account, positions))]


def _mutate(msg: FixMessage, tag: int, value: str | None) -> FixMessage:
    fields = [(t, v) for t, v in msg.fields if not (t == tag and value is None)]
    fields = [(t, value if t == tag and value is not None else v) for t, v in fields]
    return decode(encode(msg.msg_type, fields))


def test_an_answer_is_read_strictly() -> None:
    held = {"AAA": 40, "BBB": -7}
    answer = _answer(held)
    assert [m.msg_type for m in answer] == ["AO", "AP", "AP"]
    assert positions_from_fix("POS-7", "ACC", answer) == held
    assert positions_from_fix("POS-7", "ACC", _answer({})) == {}
    ao, aaa, bbb = answer
    bad: dict[str, list[FixMessage]] = {
        "no RequestForPositionsAck first": [aaa, bbb],
        "2 PositionReports announced": [ao, aaa],
        "answers request 'POS-8'": [ao, _mutate(aaa, 710, "POS-8"), bbb],
        "of account 'OTHER'": [ao, aaa, _mutate(bbb, 1, "OTHER")],
        "NoPositions must be one TOT entry": [ao, aaa, _mutate(bbb, 702, "2")],
        "disagree": [ao, aaa, _mutate(bbb, 727, "3")],
        "long 0 short 0": [ao, aaa, _mutate(_mutate(bbb, 705, "0"), 704, "0")],
        "once per symbol": [ao, aaa, _mutate(bbb, 55, "AAA")],
        "is not a decimal price": [ao, aaa, _mutate(bbb, 730, "x")],
    }
    # the group's entry out of FIX's order (ShortQty before LongQty)
    fields = list(bbb.fields)
    i, j = [t for t, _ in fields].index(704), [t for t, _ in fields].index(705)
    fields[i], fields[j] = fields[j], fields[i]
    bad["NoPositions must be one TOT entry (702=1, 703, 704, 705 in order)"] = [
        ao, aaa, decode(encode("AP", fields))]
    for needle, messages in bad.items():
        with pytest.raises(InvalidMessage, match=needle.replace("(", r"\(").replace(")", r"\)")):
            positions_from_fix("POS-7", "ACC", messages)
    # a request for another account is refused by the venue, and the refusal is no answer
    refused = _answer({"AAA": 1}, account="SOMEONE-ELSE")
    assert [m.msg_type for m in refused] == ["AO"]
    with pytest.raises(InvalidMessage, match=r"refused it \(PosReqResult 3"):
        positions_from_fix("POS-7", "ACC", refused)
    trades = _request()
    trades = decode(encode("AN", [(t, "1" if t == 724 else v) for t, v in trades.fields]))
    unsupported = _answer({"AAA": 1}, request=trades)
    with pytest.raises(InvalidMessage, match=r"refused it \(PosReqResult 4: only positions"):
        positions_from_fix("POS-7", "ACC", unsupported)
    # the codec: a tag PositionReport does not define, a repeated group entry
    with pytest.raises(InvalidMessage, match="not defined for MsgType AP"):
        decode(encode("AP", [*aaa.fields, (44, "1")]))
    with pytest.raises(InvalidMessage, match="appears twice"):
        decode(encode("AP", [*aaa.fields, (703, "TOT")]))


def test_the_start_state_keeps_the_venues_answer_and_names_a_difference() -> None:
    ours = StartState("fix", positions=(("AAA", 40), ("BBB", -7)),
                      venue_positions=(("AAA", 40), ("BBB", -7)))
    assert decode_start(encode_start(ours)) == ours
    assert ours.venue_position_problems() == []
    differs = StartState("fix", positions=(("AAA", 40),), venue_positions=(("AAA", 45),
                                                                            ("CCC", 2)))
    back = decode_start(encode_start(differs))
    assert back.venue_position_problems() == [
        "AAA: the venue reports +45, the chain's records and recovered reports make +40",
        "CCC: the venue reports +2, the chain's records and recovered reports make +0",
    ]
    # not asked (a paper venue): null, nothing to compare
    paper = StartState("paper", positions=(("AAA", 1),))
    assert b"venue_positions\xf6" in encode_start(paper)
    assert decode_start(encode_start(paper)).venue_positions is None
    # version 2 records (logged before) are still read, byte for byte
    old = StartState("fix", positions=(("AAA", 1),), version=2)
    data = encode_start(old)
    assert b"venue_positions" not in data
    assert decode_start(data) == old
    with pytest.raises(DataError, match="version 2 has no venue_positions"):
        StartState("fix", venue_positions=(("AAA", 1),), version=2)
    with pytest.raises(DataError, match="expected a map with keys"):
        decode_start(data.replace(b"\x61v\x02", b"\x61v\x03", 1))  # v 3 without its key


def test_a_continuing_run_asks_the_venue_and_logs_both(sim: VenueSimulator, tmp_path: Path) -> None:
    """What ``log_start_state`` puts on the record of a continuing FIX run: the venue's own
    answer beside the positions the chain's records and the recovered reports make."""
    from zcbench.host.restart import Continuation, RunEnd, venue_state_at_start

    venue = _venue(sim, tmp_path)
    venue.on_market(fix_events().head(4))
    venue.submit(Order("c-1-0", "AAA", "buy", 4))
    answer = venue.positions()
    venue.close()
    assert answer == {"AAA": 4}

    def end(held: int) -> RunEnd:
        return RunEnd(run_dir=tmp_path, run_id="r", origin="o", size=3, root=b"\x00" * 32,
                      positions=(("AAA", held),), start=None, previous=None, orders={},
                      exec_ids=frozenset(), unjournaled=(), unjournaled_orders=(),
                      not_acted=(), fix_folders=(), fix_sender=None, newest_event_ns=None)

    agrees = venue_state_at_start(Continuation(end(4)), venue, venue_positions=answer)
    assert agrees.venue_positions == (("AAA", 4),)
    assert agrees.venue_position_problems() == []
    state = venue_state_at_start(Continuation(end(3)), venue, venue_positions=answer)
    assert state.venue_position_problems() == [
        "AAA: the venue reports +4, the chain's records and recovered reports make +3"]
