"""Orders, order requests and execution reports: the one representation every venue speaks.

An :class:`Order` is what the execution layer sends for one signed signal: a client order id
(``cl_ord_id``), symbol, side, quantity in integer units, an order type (``market``, ``limit``,
``stop``, ``stop_limit``), a time in force (``IOC``, ``FOK``, ``DAY``, ``GTC``), prices in integer
ticks (:data:`zcbench.strategy.PRICE_SCALE`, the same ticks as :mod:`zcbench.money`), and the
link to the signed log: ``log_index`` (the OUT record holding the signal: a locator in that
run's log), ``signal_pos`` (its place in that record) and ``signal_hash`` (SHA-256 of the
signal's canonical encoding, :func:`signal_hash`). :class:`Cancel` and :class:`Replace` act on a
resting order by its client order id.

A signal's identity is the batch it answered and its place among that batch's signals, never
its log index (clock records land between batches at wall-clock moments, so the same data gives
other log indices from run to run): the execution layer names an order
``<prefix>-<batch seq>-<position>`` (:func:`cl_ord_id_for`, read back by
:func:`signal_of_cl_ord_id`), so ClOrdIDs, and what the strategy is told of them, are the same
in a backtest, a live run and a replay.

An :class:`Execution` is one outcome a venue reports, in FIX 4.4's terms (ExecType and
OrdStatus, ``shared`` by the paper venue, the FIX adapter, the drop copy and reconciliation):
``new`` (acknowledged), ``rejected`` (with a reason), ``trade`` (a partial or full fill:
``last_qty`` at ``last_px``), ``canceled``, ``replaced``, ``expired``, and ``cancel_rejected``
(a cancel or replace the venue refused; FIX's OrderCancelReject). Money stays exact:
``cum_notional`` is the sum of ``last_qty * last_px`` over the order's fills (ticks x units).

A signal becomes an order through :func:`order_from_signal`: its ``limit_price`` and the hints
``order_type``, ``tif`` and ``stop_price`` choose the type (no hints: a limit price makes an IOC
limit order, none an IOC market order, as paper fills always were).

This module imports only the strategy contract and the error tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Final

from zcbench.errors import DataError
from zcbench.strategy import Signal, encode_signals

__all__ = [
    "EXEC_TYPES",
    "ORDER_TYPES",
    "ORD_STATUSES",
    "TIFS",
    "Cancel",
    "Execution",
    "Order",
    "Replace",
    "cl_ord_id_for",
    "order_from_signal",
    "signal_hash",
    "signal_of_cl_ord_id",
]

MARKET: Final = "market"
LIMIT: Final = "limit"
STOP: Final = "stop"
STOP_LIMIT: Final = "stop_limit"
ORDER_TYPES: Final = (MARKET, LIMIT, STOP, STOP_LIMIT)
TIFS: Final = ("IOC", "FOK", "DAY", "GTC")
EXEC_TYPES: Final = (
    "new",
    "rejected",
    "trade",
    "canceled",
    "replaced",
    "expired",
    "cancel_rejected",
)
ORD_STATUSES: Final = (
    "new",
    "partially_filled",
    "filled",
    "canceled",
    "rejected",
    "expired",
)
MAX_QUANTITY: Final = 10**12
MAX_PRICE: Final = 10**15
_ID_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.:_")
MAX_ID_LEN: Final = 64
_HEX: Final = frozenset("0123456789abcdef")


def _check_id(name: str, value: object) -> None:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_ID_LEN
        or not _ID_CHARS.issuperset(value)
    ):
        raise DataError(
            f"{name} must be 1 to {MAX_ID_LEN} characters of letters, digits and -.:_, "
            f"got {value!r}"
        )


def _check_int(
    name: str, value: object, low: int, high: int, what: str = "", ident: str = ""
) -> None:
    """``value`` is an int in [low, high]; the error names it ``<what> <ident>: <name>``
    (made only when raised: the checks run for every order and report)."""
    if type(value) is not int or not low <= value <= high:
        where = f"{what} {ident}: {name}" if what else name
        raise DataError(f"{where} must be an int in [{low}, {high}], got {value!r}")


def _check_price(name: str, value: object, what: str = "", ident: str = "") -> None:
    if value is not None:
        _check_int(name, value, 1, MAX_PRICE, what, ident)


def cl_ord_id_for(prefix: str, seq: int, position: int) -> str:
    """The ClOrdID of the order for signal ``position`` of batch ``seq``'s signals in the run
    whose orders are named after ``prefix`` (its run id)."""
    return f"{prefix}-{seq}-{position}"


def signal_of_cl_ord_id(cl_ord_id: str) -> tuple[str, int, int] | None:
    """``(prefix, batch seq, position)`` of a ClOrdID made by :func:`cl_ord_id_for`, or None
    when it is not one (another naming, or no order id)."""
    parts = cl_ord_id.rsplit("-", 2)
    if len(parts) != 3 or not parts[0]:
        return None
    prefix, seq, position = parts
    if not (_decimal(seq) and _decimal(position)):
        return None
    return prefix, int(seq), int(position)


def _decimal(text: str) -> bool:
    """A non-negative int as :func:`cl_ord_id_for` writes it (no sign, no leading zero)."""
    return text.isascii() and text.isdigit() and len(text) <= 19 and (text == "0" or text[0] != "0")


def signal_hash(signal: Signal) -> str:
    """SHA-256 (hex) of ``signal`` in its canonical encoding, as the OUT record holds it: an
    auditor recomputes it from the signed log alone."""
    return hashlib.sha256(encode_signals([signal])).hexdigest()


@dataclass(frozen=True, slots=True)
class Order:
    """One order for one signed signal (module docstring)."""

    cl_ord_id: str
    symbol: str
    side: str
    quantity: int
    ord_type: str = MARKET
    tif: str = "IOC"
    limit_price: int | None = None
    stop_price: int | None = None
    log_index: int = 0
    signal_pos: int = 0
    signal_hash: str = ""

    def __post_init__(self) -> None:
        _check_id("ClOrdID", self.cl_ord_id)
        if not isinstance(self.symbol, str) or not 0 < len(self.symbol) <= 32:
            raise DataError(f"order {self.cl_ord_id}: symbol must be 1 to 32 characters")
        if self.side not in ("buy", "sell"):
            raise DataError(f"order {self.cl_ord_id}: side must be buy or sell, got {self.side!r}")
        _check_int("quantity", self.quantity, 1, MAX_QUANTITY, "order", self.cl_ord_id)
        if self.ord_type not in ORDER_TYPES:
            raise DataError(
                f"order {self.cl_ord_id}: type must be one of {', '.join(ORDER_TYPES)}, "
                f"got {self.ord_type!r}"
            )
        if self.tif not in TIFS:
            raise DataError(
                f"order {self.cl_ord_id}: time in force must be one of {', '.join(TIFS)}, "
                f"got {self.tif!r}"
            )
        _check_price("limit price", self.limit_price, "order", self.cl_ord_id)
        _check_price("stop price", self.stop_price, "order", self.cl_ord_id)
        needs_limit = self.ord_type in (LIMIT, STOP_LIMIT)
        needs_stop = self.ord_type in (STOP, STOP_LIMIT)
        if needs_limit != (self.limit_price is not None):
            raise DataError(
                f"order {self.cl_ord_id}: a {self.ord_type} order "
                f"{'needs' if needs_limit else 'takes no'} limit price"
            )
        if needs_stop != (self.stop_price is not None):
            raise DataError(
                f"order {self.cl_ord_id}: a {self.ord_type} order "
                f"{'needs' if needs_stop else 'takes no'} stop price"
            )
        if needs_stop and self.tif in ("IOC", "FOK"):
            raise DataError(
                f"order {self.cl_ord_id}: a stop order rests until triggered; its time in force "
                f"must be DAY or GTC, not {self.tif}"
            )
        _check_int("log index", self.log_index, 0, 2**63 - 1, "order", self.cl_ord_id)
        _check_int("signal position", self.signal_pos, 0, 2**31 - 1, "order", self.cl_ord_id)
        if self.signal_hash and (
            len(self.signal_hash) != 64 or not _HEX.issuperset(self.signal_hash)
        ):
            raise DataError(f"order {self.cl_ord_id}: signal hash must be 64 lowercase hex")

    @property
    def signed_quantity(self) -> int:
        return self.quantity if self.side == "buy" else -self.quantity

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Order:
        made: Order = _from_json(cls, value, "order")
        return made


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the resting order ``orig_cl_ord_id``; ``cl_ord_id`` names this request."""

    cl_ord_id: str
    orig_cl_ord_id: str

    def __post_init__(self) -> None:
        _check_id("ClOrdID", self.cl_ord_id)
        _check_id("OrigClOrdID", self.orig_cl_ord_id)


@dataclass(frozen=True, slots=True)
class Replace:
    """Replace the resting order ``orig_cl_ord_id`` by one named ``cl_ord_id`` with a new total
    quantity and prices (None keeps a price); the order keeps its venue order id."""

    cl_ord_id: str
    orig_cl_ord_id: str
    quantity: int
    limit_price: int | None = None
    stop_price: int | None = None

    def __post_init__(self) -> None:
        _check_id("ClOrdID", self.cl_ord_id)
        _check_id("OrigClOrdID", self.orig_cl_ord_id)
        _check_int("quantity", self.quantity, 1, MAX_QUANTITY, "replace", self.cl_ord_id)
        _check_price("limit price", self.limit_price, "replace", self.cl_ord_id)
        _check_price("stop price", self.stop_price, "replace", self.cl_ord_id)


@dataclass(frozen=True, slots=True)
class Execution:
    """One outcome reported by a venue (module docstring). ``ts`` is the venue's time of it,
    nanoseconds (the paper venue's clock is event time); ``text`` the reason of a reject,
    cancel or expiry."""

    exec_id: str
    order_id: str
    cl_ord_id: str
    exec_type: str
    ord_status: str
    symbol: str
    side: str
    order_qty: int
    last_qty: int = 0
    last_px: int = 0
    cum_qty: int = 0
    leaves_qty: int = 0
    cum_notional: int = 0
    ts: int = 0
    text: str = ""
    orig_cl_ord_id: str = ""
    log_index: int = 0
    signal_hash: str = ""

    def __post_init__(self) -> None:
        _check_id("ExecID", self.exec_id)
        _check_id("OrderID", self.order_id)
        _check_id("ClOrdID", self.cl_ord_id)
        if self.orig_cl_ord_id:
            _check_id("OrigClOrdID", self.orig_cl_ord_id)
        if self.exec_type not in EXEC_TYPES:
            raise DataError(f"execution {self.exec_id}: unknown exec type {self.exec_type!r}")
        if self.ord_status not in ORD_STATUSES:
            raise DataError(f"execution {self.exec_id}: unknown order status {self.ord_status!r}")
        if self.side not in ("buy", "sell"):
            raise DataError(f"execution {self.exec_id}: side must be buy or sell")
        for name in ("order_qty", "last_qty", "cum_qty", "leaves_qty"):
            _check_int(name, getattr(self, name), 0, MAX_QUANTITY, "execution", self.exec_id)
        _check_int("last_px", self.last_px, 0, MAX_PRICE, "execution", self.exec_id)
        _check_int("cum_notional", self.cum_notional, 0, 2**63 - 1, "execution", self.exec_id)
        _check_int("ts", self.ts, 0, 2**63 - 1, "execution", self.exec_id)
        _check_int("log_index", self.log_index, 0, 2**63 - 1, "execution", self.exec_id)
        if (self.exec_type == "trade") != (self.last_qty > 0):
            raise DataError(
                f"execution {self.exec_id}: a trade, and only a trade, has a last quantity"
            )
        if self.exec_type == "trade" and self.last_px <= 0:
            raise DataError(f"execution {self.exec_id}: a trade needs a positive last price")
        if not isinstance(self.text, str) or len(self.text) > 512:
            raise DataError(f"execution {self.exec_id}: text must be at most 512 characters")

    @property
    def signed_qty(self) -> int:
        """The fill's change to the position (0 for anything but a trade)."""
        return self.last_qty if self.side == "buy" else -self.last_qty

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Execution:
        made: Execution = _from_json(cls, value, "execution")
        return made

    def but(self, **changes: Any) -> Execution:
        """This execution with ``changes`` (checked again)."""
        return replace(self, **changes)


def _from_json(cls: Any, value: Mapping[str, Any], what: str) -> Any:
    if not isinstance(value, Mapping):
        raise DataError(f"an {what} must be a JSON object")
    names = set(cls.__dataclass_fields__)
    unknown = set(value) - names
    if unknown:
        raise DataError(f"{what}: unknown fields {sorted(unknown)}")
    try:
        return cls(**value)
    except TypeError as exc:
        raise DataError(f"{what}: {exc}") from None


def order_from_signal(
    signal: Signal, *, cl_ord_id: str, log_index: int, signal_pos: int
) -> Order:
    """The order for ``signal`` (module docstring): hints ``order_type`` (one of
    :data:`ORDER_TYPES`), ``tif`` (one of :data:`TIFS`) and ``stop_price`` (ticks)."""
    hints = dict(signal.hints)
    ord_type = hints.get("order_type", LIMIT if signal.limit_price is not None else MARKET)
    tif = hints.get("tif", "IOC")
    stop = hints.get("stop_price")
    if stop is not None and type(stop) is not int:
        # named by its order (batch and position), not its log index: the reason is what the
        # strategy is told of the refusal, the same bytes in a backtest as live
        raise DataError(f"order {cl_ord_id}: hint stop_price must be int ticks")
    return Order(
        cl_ord_id=cl_ord_id,
        symbol=signal.symbol,
        side=signal.side,
        quantity=signal.quantity,
        ord_type=str(ord_type),
        tif=str(tif),
        limit_price=signal.limit_price,
        stop_price=stop,
        log_index=log_index,
        signal_pos=signal_pos,
        signal_hash=signal_hash(signal),
    )
