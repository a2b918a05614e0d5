"""FIX 4.4 application messages to and from :mod:`zcbench.venue.orders`.

NewOrderSingle ``D`` <-> :class:`~zcbench.venue.orders.Order`, OrderCancelRequest ``F`` <->
:class:`~zcbench.venue.orders.Cancel`, OrderCancelReplaceRequest ``G`` <->
:class:`~zcbench.venue.orders.Replace`, ExecutionReport ``8`` and OrderCancelReject ``9`` <->
:class:`~zcbench.venue.orders.Execution`; RequestForPositions ``AN``, answered by one
RequestForPositionsAck ``AO`` and one PositionReport ``AP`` per instrument held, <-> a
position map (symbol: signed quantity). Prices are exact decimals of ticks, quantities
integers; the user-defined tags are listed in :mod:`zcbench.venue.fix.codec`.

Positions, the subset of FIX 4.4 spoken here: a request asks for positions (PosReqType 0) of one
account (Account 1, the session's SenderCompID; AccountType 1), as of the initiator's market
time (ClearingBusinessDate its UTC date, MarketTimeNs exact). The answer is an ``AO`` naming how
many reports follow (TotalNumPosReports; PosReqResult 0, or 2 with none: the account is flat; 3:
another account, not authorized; 4: another PosReqType, not supported), then that many ``AP``,
each one symbol with a NoPositions group of exactly one entry, PosType ``TOT`` (the total of the
account's transactions), LongQty and ShortQty (one of them zero, not both). SettlPrice and
PriorSettlPrice, required by FIX, are 0: settlement is not modelled. :func:`positions_from_fix`
holds an answer to all of that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from zcbench.errors import DataError
from zcbench.strategy import PRICE_SCALE
from zcbench.venue.fix.codec import FixMessage, InvalidMessage, fix_time, format_price, parse_price
from zcbench.venue.orders import Cancel, Execution, Order, Replace

__all__ = [
    "cancel_fields",
    "cancel_from_fix",
    "execution_fields",
    "execution_from_fix",
    "order_fields",
    "order_from_fix",
    "position_answer",
    "position_request_fields",
    "positions_from_fix",
    "replace_fields",
    "replace_from_fix",
]

SIDE: Final = {"buy": "1", "sell": "2"}
ORD_TYPE: Final = {"market": "1", "limit": "2", "stop": "3", "stop_limit": "4"}
TIF: Final = {"DAY": "0", "GTC": "1", "IOC": "3", "FOK": "4"}
EXEC_TYPE: Final = {
    "new": "0",
    "canceled": "4",
    "replaced": "5",
    "rejected": "8",
    "expired": "C",
    "trade": "F",
}
ORD_STATUS: Final = {
    "new": "0",
    "partially_filled": "1",
    "filled": "2",
    "canceled": "4",
    "rejected": "8",
    "expired": "C",
}
Fields = list[tuple[int, str | int]]
POS_TYPE: Final = "TOT"
MAX_POSITIONS: Final = 10_000
"""Most PositionReports one answer may hold (instruments held by one account)."""
_DATE: Final = re.compile(r"[0-9]{8}")
_GROUP: Final = (702, 703, 704, 705)


def _back(table: dict[str, str], value: str | None, tag: int, msg: FixMessage) -> str:
    for k, v in table.items():
        if v == value:
            return k
    raise InvalidMessage(f"tag {tag} value {value!r} is not supported", ref_seq=msg.seq,
                         ref_tag=tag, msg_type=msg.msg_type)


def _price(msg: FixMessage, tag: int) -> int | None:
    value = msg.get(tag)
    return None if value is None else parse_price(value, tag=tag, ref_seq=msg.seq)


def _made(msg: FixMessage, build: type, **kw: object) -> object:
    try:
        return build(**kw)
    except DataError as exc:
        raise InvalidMessage(str(exc), ref_seq=msg.seq, msg_type=msg.msg_type) from None


def order_fields(order: Order, *, market_ns: int) -> Fields:
    fields: Fields = [
        (11, order.cl_ord_id),
        (55, order.symbol),
        (54, SIDE[order.side]),
        (38, order.quantity),
        (40, ORD_TYPE[order.ord_type]),
        (59, TIF[order.tif]),
        (60, fix_time(market_ns)),
    ]
    if order.limit_price is not None:
        fields.append((44, format_price(order.limit_price)))
    if order.stop_price is not None:
        fields.append((99, format_price(order.stop_price)))
    fields += [(20001, order.log_index), (20003, order.signal_pos), (20004, market_ns)]
    if order.signal_hash:
        fields.append((20002, order.signal_hash))
    return fields


def order_from_fix(msg: FixMessage) -> Order:
    made = _made(
        msg,
        Order,
        cl_ord_id=msg[11],
        symbol=msg[55],
        side=_back(SIDE, msg.get(54), 54, msg),
        quantity=msg.number(38),
        ord_type=_back(ORD_TYPE, msg.get(40), 40, msg),
        tif=_back(TIF, msg.get(59), 59, msg),
        limit_price=_price(msg, 44),
        stop_price=_price(msg, 99),
        log_index=msg.number(20001, 0),
        signal_pos=msg.number(20003, 0),
        signal_hash=msg.get(20002, ""),
    )
    assert isinstance(made, Order)
    return made


def cancel_fields(request: Cancel, order: Order, *, market_ns: int) -> Fields:
    return [
        (41, request.orig_cl_ord_id),
        (11, request.cl_ord_id),
        (55, order.symbol),
        (54, SIDE[order.side]),
        (38, order.quantity),
        (60, fix_time(market_ns)),
        (20004, market_ns),
    ]


def cancel_from_fix(msg: FixMessage) -> Cancel:
    made = _made(msg, Cancel, cl_ord_id=msg[11], orig_cl_ord_id=msg[41])
    assert isinstance(made, Cancel)
    return made


def replace_fields(request: Replace, order: Order, *, market_ns: int) -> Fields:
    fields: Fields = [
        (41, request.orig_cl_ord_id),
        (11, request.cl_ord_id),
        (55, order.symbol),
        (54, SIDE[order.side]),
        (38, request.quantity),
        (40, ORD_TYPE[order.ord_type]),
        (59, TIF[order.tif]),
        (60, fix_time(market_ns)),
    ]
    if request.limit_price is not None:
        fields.append((44, format_price(request.limit_price)))
    if request.stop_price is not None:
        fields.append((99, format_price(request.stop_price)))
    fields.append((20004, market_ns))
    return fields


def replace_from_fix(msg: FixMessage) -> Replace:
    made = _made(
        msg,
        Replace,
        cl_ord_id=msg[11],
        orig_cl_ord_id=msg[41],
        quantity=msg.number(38),
        limit_price=_price(msg, 44),
        stop_price=_price(msg, 99),
    )
    assert isinstance(made, Replace)
    return made


def _avg(e: Execution) -> str:
    if not e.cum_qty:
        return "0"
    value = Decimal(e.cum_notional) / (e.cum_qty * PRICE_SCALE)
    return f"{value.quantize(Decimal('0.00000001')).normalize():f}"


def execution_fields(e: Execution) -> tuple[str, Fields]:
    """The MsgType (``8``, or ``9`` for a refused cancel/replace) and fields of ``e``."""
    if e.exec_type == "cancel_rejected":
        fields: Fields = [
            (37, e.order_id),
            (11, e.cl_ord_id),
            (41, e.orig_cl_ord_id or "NONE"),
            (39, ORD_STATUS[e.ord_status]),
            (434, "2" if "replace" in e.text else "1"),
            (60, fix_time(e.ts)),
            (17, e.exec_id),
            (20004, e.ts),
        ]
        if e.symbol != "?":
            fields += [(55, e.symbol), (54, SIDE[e.side]), (38, e.order_qty)]
        if e.text:
            fields.append((58, e.text))
        return "9", fields
    fields = [
        (37, e.order_id),
        (11, e.cl_ord_id),
        (17, e.exec_id),
        (150, EXEC_TYPE[e.exec_type]),
        (39, ORD_STATUS[e.ord_status]),
        (55, e.symbol),
        (54, SIDE[e.side]),
        (38, e.order_qty),
        (32, e.last_qty),
        (31, format_price(e.last_px)),
        (14, e.cum_qty),
        (151, e.leaves_qty),
        (6, _avg(e)),
        (60, fix_time(e.ts)),
    ]
    if e.orig_cl_ord_id:
        fields.append((41, e.orig_cl_ord_id))
    if e.text:
        fields.append((58, e.text))
    fields += [(20001, e.log_index), (20004, e.ts), (20005, e.cum_notional)]
    if e.signal_hash:
        fields.append((20002, e.signal_hash))
    return "8", fields


def execution_from_fix(msg: FixMessage) -> Execution:
    """An ExecutionReport (or OrderCancelReject) as an :class:`Execution`."""
    if msg.msg_type == "9":
        made = _made(
            msg,
            Execution,
            exec_id=msg.get(17) or f"CXLREJ-{msg.seq}",
            order_id=msg[37],
            cl_ord_id=msg[11],
            exec_type="cancel_rejected",
            ord_status=_back(ORD_STATUS, msg.get(39), 39, msg),
            symbol=msg.get(55, "?"),
            side=_back(SIDE, msg.get(54, "1"), 54, msg),
            order_qty=msg.number(38, 0),
            ts=msg.number(20004, 0),
            text=msg.get(58, ""),
            orig_cl_ord_id="" if msg[41] == "NONE" else msg[41],
        )
    elif msg.msg_type == "8":
        made = _made(
            msg,
            Execution,
            exec_id=msg[17],
            order_id=msg[37],
            cl_ord_id=msg[11],
            exec_type=_back(EXEC_TYPE, msg.get(150), 150, msg),
            ord_status=_back(ORD_STATUS, msg.get(39), 39, msg),
            symbol=msg[55],
            side=_back(SIDE, msg.get(54), 54, msg),
            order_qty=msg.number(38),
            last_qty=msg.number(32),
            last_px=parse_price(msg[31], tag=31, ref_seq=msg.seq),
            cum_qty=msg.number(14),
            leaves_qty=msg.number(151),
            cum_notional=msg.number(20005, 0),
            ts=msg.number(20004, 0),
            text=msg.get(58, ""),
            orig_cl_ord_id=msg.get(41, ""),
            log_index=msg.number(20001, 0),
            signal_hash=msg.get(20002, ""),
        )
    else:
        raise InvalidMessage(f"MsgType {msg.msg_type} is no execution report", ref_seq=msg.seq)
    assert isinstance(made, Execution)
    return made


def _business_date(market_ns: int) -> str:
    return f"{datetime.fromtimestamp(market_ns // 1_000_000_000, tz=UTC):%Y%m%d}"


def position_request_fields(req_id: str, *, account: str, market_ns: int) -> Fields:
    """A RequestForPositions ``AN`` for ``account``'s positions as of ``market_ns``."""
    return [(710, req_id), (724, 0), (1, account), (581, 1), (715, _business_date(market_ns)),
            (60, fix_time(market_ns)), (20004, market_ns)]


def position_answer(request: FixMessage, account: str,
                    positions: Mapping[str, int]) -> list[tuple[str, Fields]]:
    """The answer to ``request`` (an ``AN``) from the book of ``account`` (the session asking):
    its ``AO`` then one ``AP`` per symbol held, in symbol order; a request for another account
    (PosReqResult 3) or of another kind (4) is refused with no reports."""
    req_id = request[710]
    held = sorted((s, q) for s, q in positions.items() if q)
    # PosReqResult 3: not authorized (another account), 4: not supported (another kind)
    refused = 3 if request[1] != account else 4 if request[724] != "0" else 0
    if refused:
        held = []
    n = len(held)
    result = refused or (0 if n else 2)
    date = request[715]
    ack: Fields = [(721, f"{req_id}-0"), (710, req_id), (727, n), (728, result), (729, 0),
                   (1, request[1]), (581, 1)]
    if refused:
        ack.append((58, "positions of another account are not given" if refused == 3 else
                    "only positions (PosReqType 0) are given"))
    out: list[tuple[str, Fields]] = [("AO", ack)]
    for k, (symbol, qty) in enumerate(held, 1):
        out.append(("AP", [
            (721, f"{req_id}-{k}"), (710, req_id), (724, 0), (727, n), (728, 0), (715, date),
            (1, account), (581, 1), (55, symbol), (730, "0"), (731, 1), (734, "0"),
            (702, 1), (703, POS_TYPE), (704, max(qty, 0)), (705, max(-qty, 0)),
        ]))
    return out


def positions_from_fix(req_id: str, account: str,
                       messages: Sequence[FixMessage]) -> dict[str, int]:
    """The positions an answer to request ``req_id`` for ``account`` reports (symbol: signed
    quantity, no zero), or :class:`InvalidMessage` naming what is wrong with it: the answer is
    exactly one ``AO`` and the number of ``AP`` it announces, in that order, every one naming
    ``req_id`` and ``account``, each a distinct report id and symbol, its NoPositions group one
    ``TOT`` entry in FIX's order with one of LongQty and ShortQty zero."""
    if not messages or messages[0].msg_type != "AO":
        raise InvalidMessage(f"position request {req_id}: no RequestForPositionsAck first",
                             ref_seq=messages[0].seq if messages else None)
    ack, reports = messages[0], messages[1:]
    for msg in messages:
        if msg.get(710) != req_id or msg.get(1) != account:
            raise InvalidMessage(f"position request {req_id}: {msg.msg_type} {msg.seq} answers "
                                 f"request {msg.get(710)!r} of account {msg.get(1)!r}",
                                 ref_seq=msg.seq, ref_tag=710, msg_type=msg.msg_type)
    total, result = ack.number(727), ack.number(728)
    if result not in (0, 2) or ack.number(729) != 0:
        raise InvalidMessage(f"position request {req_id}: the venue refused it (PosReqResult "
                             f"{result}: {ack.get(58, 'no text')})", ref_seq=ack.seq,
                             ref_tag=728, msg_type="AO")
    if total > MAX_POSITIONS or (result == 2) != (total == 0):
        raise InvalidMessage(f"position request {req_id}: {total} reports with PosReqResult "
                             f"{result}", ref_seq=ack.seq, ref_tag=727, msg_type="AO")
    if len(reports) != total or any(m.msg_type != "AP" for m in reports):
        raise InvalidMessage(f"position request {req_id}: {total} PositionReports announced, "
                             f"{[m.msg_type for m in reports]} came", ref_seq=ack.seq,
                             ref_tag=727, msg_type="AO")
    out: dict[str, int] = {}
    ids = {ack[721]}
    for msg in reports:
        where = f"position request {req_id}: PositionReport {msg.seq}"
        tags = [t for t, _ in msg.fields]
        at = tags.index(702)
        if tuple(tags[at : at + 4]) != _GROUP or msg.number(702) != 1 or msg[703] != POS_TYPE:
            raise InvalidMessage(f"{where}: NoPositions must be one {POS_TYPE} entry (702=1, "
                                 "703, 704, 705 in order)", ref_seq=msg.seq, ref_tag=702,
                                 msg_type="AP")
        if msg.number(727) != total or msg.number(728) != 0 or msg[724] != "0" or (
            not _DATE.fullmatch(msg[715])
        ):
            raise InvalidMessage(f"{where}: its TotalNumPosReports, PosReqResult, PosReqType or "
                                 "ClearingBusinessDate disagree with the request's answer",
                                 ref_seq=msg.seq, msg_type="AP")
        long, short = msg.number(704), msg.number(705)
        symbol = msg[55]
        if (long == 0) == (short == 0) or max(long, short) >= 2**63 or symbol in out or (
            msg[721] in ids
        ):
            raise InvalidMessage(f"{where}: {symbol} long {long} short {short} (one of them, "
                                 "once per symbol and report id)", ref_seq=msg.seq,
                                 ref_tag=704, msg_type="AP")
        ids.add(msg[721])
        parse_price(msg[730], tag=730, ref_seq=msg.seq)
        parse_price(msg[734], tag=734, ref_seq=msg.seq)
        out[symbol] = long - short
    return out
