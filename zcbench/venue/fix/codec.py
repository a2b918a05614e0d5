"""FIX 4.4 tag=value messages: a strict, bounded codec (DESIGN.md, "Venues and reconciliation").

A message is ``8=FIX.4.4|9=<BodyLength>|35=<MsgType>|...|10=<CheckSum>|`` with SOH (0x01) for
``|``. :func:`encode` writes one; :func:`decode` reads exactly one and refuses, naming the
reason, anything but: BeginString ``FIX.4.4`` first, BodyLength second and equal to the bytes
from MsgType up to the CheckSum field, MsgType third, CheckSum last (three digits, the byte
sum mod 256 of everything before it), tags of decimal digits without leading zeros, non-empty
values without SOH, each tag at most once (the one repeating group used, a PositionReport's
NoPositions, has exactly one entry: :mod:`zcbench.venue.fix.messages`), every required tag
of the message type present and no tag the type does not know, and at most
:data:`MAX_MESSAGE` bytes. :class:`Framer` cuts a byte stream into such messages with a bounded
buffer; bytes that cannot start a message are skipped up to the next ``8=FIX.4.4`` and
reported, never buffered without bound.

Errors: :class:`GarbledMessage` (the frame itself is damaged: BeginString, BodyLength,
CheckSum; FIX says ignore it, and the sequence gap it leaves is resent) and
:class:`InvalidMessage` (a whole frame whose content breaks the rules: answered with a
session Reject naming ``ref_seq`` and ``ref_tag``). Both are :class:`~zcbench.errors.DataError`.

User-defined tags (between zcbench and a venue that speaks them):

=====  ===============  ===========================================================
20001  SignalLogIndex   index of the signed OUT record holding the order's signal
20002  SignalHash       SHA-256 hex of the signal's canonical encoding
20003  SignalPos        the signal's place in that OUT record
20004  MarketTimeNs     on requests, the event time (ns) the initiator's market has
                        reached (the simulator replays its data up to it, inclusive,
                        before it acts); on reports, the venue's event time of the
                        execution (TransactTime has milliseconds only)
20005  CumNotional      exact sum of LastQty x LastPx in ticks x units (AvgPx is
                        rounded; this is not)
=====  ===============  ===========================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Final

from zcbench.errors import DataError
from zcbench.strategy import PRICE_SCALE

__all__ = [
    "BEGIN_STRING",
    "MAX_MESSAGE",
    "REQUIRED",
    "SOH",
    "FixMessage",
    "Framer",
    "GarbledMessage",
    "InvalidMessage",
    "decode",
    "encode",
    "fix_time",
    "format_price",
    "iter_messages",
    "parse_price",
]

SOH: Final = b"\x01"
BEGIN_STRING: Final = "FIX.4.4"
MAX_MESSAGE: Final = 8192
_PREFIX: Final = b"8=FIX.4.4\x01"
_MAX_FIELDS: Final = 64
_MAX_VALUE: Final = 512

HEADER: Final = frozenset({8, 9, 35, 49, 56, 34, 52, 43, 97, 122})
_HEADER_REQUIRED: Final = (49, 56, 34, 52)
_ORDER_LINK: Final = (20001, 20002, 20003, 20004)
# per MsgType: (required body tags, optional body tags)
REQUIRED: Final[dict[str, tuple[tuple[int, ...], tuple[int, ...]]]] = {
    "A": ((98, 108), (141,)),  # Logon: EncryptMethod, HeartBtInt, ResetSeqNumFlag
    "0": ((), (112,)),  # Heartbeat
    "1": ((112,), (20004,)),  # TestRequest (MarketTimeNs: advance the simulator)
    "2": ((7, 16), ()),  # ResendRequest: BeginSeqNo, EndSeqNo (0: to the end)
    "3": ((45,), (58, 371, 372, 373)),  # Reject
    "4": ((36,), (123,)),  # SequenceReset: NewSeqNo, GapFillFlag
    "5": ((), (58,)),  # Logout
    "D": ((11, 55, 54, 38, 40, 59, 60), (44, 99, *_ORDER_LINK)),
    "F": ((41, 11, 55, 54, 38, 60), (20004,)),
    "G": ((41, 11, 55, 54, 38, 40, 59, 60), (44, 99, 20004)),
    "8": (
        (37, 11, 17, 150, 39, 55, 54, 38, 32, 31, 14, 151, 6, 60),
        (41, 58, 20001, 20002, 20004, 20005),
    ),
    "9": ((37, 11, 41, 39, 434, 60), (58, 55, 54, 38, 17, 20004)),  # OrderCancelReject
    # RequestForPositions: PosReqID, PosReqType (0: positions), Account, AccountType,
    # ClearingBusinessDate, TransactTime
    "AN": ((710, 724, 1, 581, 715, 60), (20004,)),
    # RequestForPositionsAck: PosMaintRptID, PosReqID, TotalNumPosReports, PosReqResult,
    # PosReqStatus, Account, AccountType
    "AO": ((721, 710, 727, 728, 729, 1, 581), (58,)),
    # PositionReport, one instrument each: PosMaintRptID, PosReqID, PosReqType,
    # TotalNumPosReports, PosReqResult, ClearingBusinessDate, Account, AccountType, Symbol,
    # SettlPrice, SettlPriceType, PriorSettlPrice, and NoPositions (702) with exactly one
    # entry PosType (703), LongQty (704), ShortQty (705), in that order
    "AP": ((721, 710, 724, 727, 728, 715, 1, 581, 55, 730, 731, 734, 702, 703, 704, 705), ()),
}
_ALLOWED: Final = {
    t: frozenset(HEADER) | frozenset(req) | frozenset(opt) for t, (req, opt) in REQUIRED.items()
}
_TAG: Final = re.compile(rb"[1-9][0-9]{0,5}")
_PRICE: Final = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,8})?")


class GarbledMessage(DataError):
    """The frame is damaged (BeginString, BodyLength, CheckSum, size): ignore it."""


class InvalidMessage(DataError):
    """A whole frame whose content breaks the rules: reject it by ``ref_seq``."""

    def __init__(self, message: str, *, ref_seq: int | None, ref_tag: int | None = None,
                 msg_type: str = "") -> None:
        super().__init__(message)
        self.ref_seq = ref_seq
        self.ref_tag = ref_tag
        self.msg_type = msg_type


@dataclass(frozen=True, slots=True)
class FixMessage:
    """A decoded message: its type and its fields in wire order (header and body, without 8,
    9 and 10); ``raw`` is the exact bytes it came from (empty for one made here)."""

    msg_type: str
    fields: tuple[tuple[int, str], ...]
    raw: bytes = b""

    def get(self, tag: int, default: str | None = None) -> str | None:
        for t, v in self.fields:
            if t == tag:
                return v
        return default

    def __getitem__(self, tag: int) -> str:
        value = self.get(tag)
        if value is None:
            raise KeyError(tag)
        return value

    def number(self, tag: int, default: int | None = None) -> int:
        value = self.get(tag)
        if value is None:
            if default is None:
                raise InvalidMessage(f"tag {tag} missing", ref_seq=self.seq, ref_tag=tag)
            return default
        if not value.isdigit() or (len(value) > 1 and value[0] == "0") or len(value) > 19:
            raise InvalidMessage(
                f"tag {tag} must be a non-negative integer, got {value!r}",
                ref_seq=self.seq,
                ref_tag=tag,
                msg_type=self.msg_type,
            )
        return int(value)

    @property
    def seq(self) -> int | None:
        value = self.get(34)
        return int(value) if value is not None and value.isdigit() else None

    @property
    def poss_dup(self) -> bool:
        return self.get(43) == "Y"


def _checksum(data: bytes) -> str:
    return f"{sum(data) % 256:03d}"


def encode(msg_type: str, fields: Iterable[tuple[int, str | int]]) -> bytes:
    """One message: ``fields`` are the header's 49, 56, 34, 52 (43, 122) then the body, in
    order; BeginString, BodyLength, MsgType and CheckSum are added here."""
    parts = [f"35={msg_type}".encode()]
    for tag, value in fields:
        text = str(value)
        if not text or "\x01" in text or tag in (8, 9, 10, 35):
            raise DataError(f"FIX field {tag}={text!r}: empty, holds SOH, or is set by the codec")
        parts.append(f"{tag}={text}".encode())
    body = SOH.join(parts) + SOH
    head = _PREFIX + f"9={len(body)}".encode() + SOH
    message = head + body
    out = message + b"10=" + _checksum(message).encode() + SOH
    if len(out) > MAX_MESSAGE:
        raise DataError(f"FIX message of {len(out)} bytes is over the {MAX_MESSAGE}-byte limit")
    return out


def decode(data: bytes, *, max_size: int = MAX_MESSAGE) -> FixMessage:
    """Exactly one message from ``data`` (module docstring)."""
    if len(data) > max_size:
        raise GarbledMessage(f"message of {len(data)} bytes is over the {max_size}-byte limit")
    if not data.startswith(_PREFIX):
        raise GarbledMessage("message does not start with 8=FIX.4.4")
    rest = data[len(_PREFIX) :]
    end = rest.find(SOH)
    if not rest.startswith(b"9=") or end < 0:
        raise GarbledMessage("BodyLength (9) is not the second field")
    length_text = rest[2:end]
    if not length_text.isdigit() or len(length_text) > 5 or length_text[:1] == b"0":
        raise GarbledMessage(f"BodyLength {length_text!r} is not a positive integer")
    length = int(length_text)
    body_start = len(_PREFIX) + end + 1
    body_end = body_start + length
    trailer = data[body_end:]
    if len(trailer) != 7 or not trailer.startswith(b"10=") or trailer[-1:] != SOH:
        raise GarbledMessage(
            f"BodyLength {length} does not end where CheckSum (10) starts, or the trailer "
            "is not 10=NNN"
        )
    if trailer[3:6].decode("ascii", "replace") != _checksum(data[:body_end]):
        raise GarbledMessage(
            f"CheckSum {trailer[3:6].decode('ascii', 'replace')} is not "
            f"{_checksum(data[:body_end])}"
        )
    body = data[body_start:body_end]
    if not body.endswith(SOH):
        raise GarbledMessage("the body does not end with SOH")
    fields: list[tuple[int, str]] = []
    for item in body[:-1].split(SOH):
        tag_b, eq, value_b = item.partition(b"=")
        if not eq or not _TAG.fullmatch(tag_b):
            raise InvalidMessage(f"field {item[:20]!r} is not tag=value", ref_seq=None)
        if not value_b or len(value_b) > _MAX_VALUE:
            raise InvalidMessage(f"tag {int(tag_b)} has an empty or oversize value",
                                 ref_seq=None, ref_tag=int(tag_b))
        try:
            value = value_b.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidMessage(f"tag {int(tag_b)} is not ASCII", ref_seq=None,
                                 ref_tag=int(tag_b)) from None
        fields.append((int(tag_b), value))
    if len(fields) > _MAX_FIELDS:
        raise InvalidMessage(f"{len(fields)} fields: more than {_MAX_FIELDS}", ref_seq=None)
    msg = FixMessage(fields[0][1] if fields else "", tuple(fields[1:]), bytes(data))
    if not fields or fields[0][0] != 35:
        raise InvalidMessage("MsgType (35) is not the third field", ref_seq=None)
    _check(msg)
    return msg


def _check(msg: FixMessage) -> None:
    seq = msg.seq
    tags = [t for t, _ in msg.fields]
    if msg.msg_type not in REQUIRED:
        raise InvalidMessage(f"MsgType {msg.msg_type!r} is not supported", ref_seq=seq,
                             ref_tag=35, msg_type=msg.msg_type)
    seen: set[int] = set()
    for tag in tags:
        if tag in seen or tag in (8, 9, 10, 35):
            raise InvalidMessage(f"tag {tag} appears twice", ref_seq=seq, ref_tag=tag,
                                 msg_type=msg.msg_type)
        seen.add(tag)
        if tag not in _ALLOWED[msg.msg_type]:
            raise InvalidMessage(f"tag {tag} is not defined for MsgType {msg.msg_type}",
                                 ref_seq=seq, ref_tag=tag, msg_type=msg.msg_type)
    required, _ = REQUIRED[msg.msg_type]
    for tag in (*_HEADER_REQUIRED, *required):
        if tag not in seen:
            raise InvalidMessage(f"required tag {tag} missing from MsgType {msg.msg_type}",
                                 ref_seq=seq, ref_tag=tag, msg_type=msg.msg_type)
    msg.number(34)


class Framer:
    """Cuts a byte stream into messages; the buffer never holds more than one message's
    bound. :meth:`feed` returns, in order, each whole message's bytes or a
    :class:`GarbledMessage` for bytes skipped."""

    def __init__(self, *, max_size: int = MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self._max = max_size

    def feed(self, data: bytes) -> list[bytes | GarbledMessage]:
        self._buf += data
        out: list[bytes | GarbledMessage] = []
        while self._buf:
            start = self._buf.find(_PREFIX)
            if start < 0:
                # keep only a tail that may still become the start of a message
                keep = next(
                    (
                        k
                        for k in range(min(len(self._buf), len(_PREFIX) - 1), 0, -1)
                        if _PREFIX.startswith(bytes(self._buf[-k:]))
                    ),
                    0,
                )
                cut = len(self._buf) - keep
                if cut:
                    out.append(GarbledMessage(f"{cut} bytes that start no message skipped"))
                    del self._buf[:cut]
                break
            if start > 0:
                out.append(GarbledMessage(f"{start} bytes that start no message skipped"))
                del self._buf[:start]
                continue
            head_end = self._buf.find(SOH, len(_PREFIX))
            if head_end < 0:
                if len(self._buf) > len(_PREFIX) + 8:
                    out.append(self._skip("BodyLength missing or too long"))
                    continue
                break
            field = bytes(self._buf[len(_PREFIX) : head_end])
            digits = field[2:]
            if not field.startswith(b"9=") or not digits.isdigit() or len(digits) > 5:
                out.append(self._skip("BodyLength (9) is not the second field"))
                continue
            total = head_end + 1 + int(digits) + 7
            if total > self._max:
                out.append(self._skip(f"a message of {total} bytes is over the limit"))
                continue
            if len(self._buf) < total:
                break
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]
        return out

    def _skip(self, why: str) -> GarbledMessage:
        nxt = self._buf.find(_PREFIX, 1)
        cut = len(self._buf) if nxt < 0 else nxt
        del self._buf[:cut]
        return GarbledMessage(f"{why}: {cut} bytes skipped")


def format_price(ticks: int) -> str:
    """Integer ticks as FIX's decimal price: ``1_012_500`` is ``"101.25"``."""
    value = Decimal(ticks) / PRICE_SCALE
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def parse_price(text: str, *, tag: int = 44, ref_seq: int | None = None) -> int:
    """FIX's decimal price as integer ticks, exact, or :class:`InvalidMessage`."""
    if not _PRICE.fullmatch(text):
        raise InvalidMessage(f"tag {tag} is not a decimal price: {text!r}", ref_seq=ref_seq,
                             ref_tag=tag)
    try:
        scaled = Decimal(text) * PRICE_SCALE
    except InvalidOperation:
        raise InvalidMessage(f"tag {tag} is not a price", ref_seq=ref_seq, ref_tag=tag) from None
    if scaled != scaled.to_integral_value():
        raise InvalidMessage(f"tag {tag} price {text} is finer than a tick", ref_seq=ref_seq,
                             ref_tag=tag)
    return int(scaled)


def fix_time(ns: int) -> str:
    """UTCTimestamp with milliseconds: ``20240102-09:00:00.000``."""
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    return f"{dt:%Y%m%d-%H:%M:%S}.{(ns // 1_000_000) % 1000:03d}"


def iter_messages(data: bytes) -> Iterator[bytes | GarbledMessage]:
    """Every message (or garbled stretch) of a whole byte string, such as a drop copy."""
    framer = Framer()
    yield from framer.feed(data)
    rest = bytes(framer._buf)
    if rest:
        yield GarbledMessage(f"{len(rest)} bytes at the end are no whole message")
