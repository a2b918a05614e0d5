"""The venue's state at a run's start: the first IN record of a run that continues another.

When a run continues the one before it (DESIGN.md, "Restart continuity"), the host asks the
venue what stands before the first batch and has the enclave log it as an IN record of seq 0,
ahead of batch 0's records: the positions and open orders as the venue reports them, the
reports of the previous runs' orders that no earlier run recorded (the crash window of a host
killed between the venue's report and its journal), the orders the previous run sent whose
journal rows it never wrote, and the signed signals the previous run never acted on (they
are not sent now: a restart does not act on stale signals). So a restart neither flattens
nor doubles a position, and every venue execution is in the chain's record exactly once.

The enclave hands the strategy the positions as the context of batch 0 (a
:class:`~zcbench.strategy.Context` with no outcomes). :func:`encode_start` is the one
encoding (canonical CBOR, lists in the order given, positions sorted by symbol);
:func:`decode_start` its strict, bounded reader through ``zcbench._cbor``.

Version 2 names a signal by the seq of the batch it answered and its position among that
batch's signals (``batch``, ``signal``; ``not_acted`` as ``(origin, batch, position)``), and an
execution by its ClOrdID alone; version 1 named signals by their OUT record's log index, which
clock records shift from run to run. Version 3 adds ``venue_positions``: the positions the
venue itself reported when asked at the start (a FIX venue's PositionReports to a
RequestForPositions; null when the venue was not asked, as the paper venue, which lives in the
host), beside ``positions``, those the chain's records and the recovered reports make, which
the run starts from; a difference is named by the chain's checks (``check_link``,
``zcbench reconcile``: ``position_mismatch``). This build writes version 3 and reads 2 and 3
(version 1 is refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from zcbench import _cbor
from zcbench._cbor import describe
from zcbench.errors import DataError

__all__ = [
    "START_VERSION",
    "StartExecution",
    "StartOrder",
    "StartState",
    "decode_start",
    "encode_start",
    "is_start",
]

START_VERSION: Final = 3
_MAX_ITEMS: Final = 100_000
_MAX_TEXT: Final = 256
_MAX_BYTES: Final = 64 * 1024 * 1024
_INT64: Final = 2**63
_KEYS_V2: Final = frozenset(
    {"v", "type", "venue", "positions", "open_orders", "orders", "executions", "not_acted"}
)
_KEYS: Final = _KEYS_V2 | {"venue_positions"}
_ORDER_KEYS: Final = frozenset(
    {"cl_ord_id", "symbol", "side", "quantity", "leaves_qty", "batch", "signal"}
)
_EXEC_KEYS: Final = frozenset(
    {"exec_id", "cl_ord_id", "exec_type", "symbol", "side", "order_qty", "last_qty", "last_px",
     "cum_qty", "leaves_qty"}
)


def _text(value: Any, *, empty: bool = False) -> bool:
    return type(value) is str and (empty or value != "") and len(value) <= _MAX_TEXT


def _uint(value: Any) -> bool:
    return type(value) is int and 0 <= value < _INT64


@dataclass(frozen=True, slots=True)
class StartOrder:
    """An order of a previous run: its ClOrdID, what it asks for, ``leaves_qty`` still open at
    the venue, and its signal: the seq of the batch it answered in that run (``batch``) and
    its position among that batch's signals (``signal``)."""

    cl_ord_id: str
    symbol: str
    side: str
    quantity: int
    leaves_qty: int
    batch: int
    signal: int

    def __post_init__(self) -> None:
        ok = (_text(self.cl_ord_id) and _text(self.symbol) and self.side in ("buy", "sell")
              and _uint(self.quantity) and _uint(self.leaves_qty) and _uint(self.batch)
              and _uint(self.signal))
        if not ok:
            raise DataError(f"start state: order {describe(self.cl_ord_id)} is malformed")


@dataclass(frozen=True, slots=True)
class StartExecution:
    """A venue report of a previous run's order that no run of the chain recorded: its ExecID,
    ClOrdID, type (``zcbench.venue`` names), OrderQty, fill (``last_qty`` at ``last_px``
    ticks; 0 when none), CumQty and LeavesQty (its ClOrdID names the order, and so the
    signal)."""

    exec_id: str
    cl_ord_id: str
    exec_type: str
    symbol: str
    side: str
    order_qty: int
    last_qty: int
    last_px: int
    cum_qty: int
    leaves_qty: int

    def __post_init__(self) -> None:
        ok = (_text(self.exec_id) and _text(self.cl_ord_id) and _text(self.exec_type)
              and _text(self.symbol, empty=True) and self.side in ("buy", "sell")
              and all(_uint(v) for v in (self.order_qty, self.last_qty, self.last_px,
                                         self.cum_qty, self.leaves_qty)))
        if not ok:
            raise DataError(f"start state: execution {describe(self.exec_id)} is malformed")

    @property
    def signed_qty(self) -> int:
        """The fill's effect on the position (0 unless a trade)."""
        if self.exec_type != "trade":
            return 0
        return self.last_qty if self.side == "buy" else -self.last_qty


@dataclass(frozen=True, slots=True)
class StartState:
    """What stands at the venue before batch 0 of a continuing run (module docstring).
    ``positions``: sorted ``(symbol, quantity)`` pairs, no zero; ``not_acted``: ``(origin,
    batch seq, signal position)`` of the previous runs' signed signals never acted on;
    ``venue_positions``: the venue's own answer when asked (sorted pairs, no zero; None: not
    asked); ``version``: the record version it was read from (written as the current one)."""

    venue: str
    positions: tuple[tuple[str, int], ...] = ()
    open_orders: tuple[StartOrder, ...] = ()
    orders: tuple[StartOrder, ...] = ()
    executions: tuple[StartExecution, ...] = ()
    not_acted: tuple[tuple[str, int, int], ...] = ()
    venue_positions: tuple[tuple[str, int], ...] | None = None
    version: int = START_VERSION

    def __post_init__(self) -> None:
        if not _text(self.venue):
            raise DataError(f"start state: venue {describe(self.venue)} is not a name")
        object.__setattr__(self, "positions", _position_pairs(self.positions))
        if self.version not in (2, START_VERSION):
            raise DataError(f"start state: version {describe(self.version)} is not 2 or 3")
        if self.venue_positions is not None:
            if self.version == 2:
                raise DataError("start state: version 2 has no venue_positions")
            object.__setattr__(self, "venue_positions", _position_pairs(self.venue_positions))
        for name, cls in (("open_orders", StartOrder), ("orders", StartOrder),
                          ("executions", StartExecution)):
            items = tuple(getattr(self, name))
            if len(items) > _MAX_ITEMS or not all(isinstance(i, cls) for i in items):
                raise DataError(f"start state: {name} must be at most {_MAX_ITEMS} "
                                f"{cls.__name__} values")
            object.__setattr__(self, name, items)
        acted = tuple((o, seq, k) for o, seq, k in self.not_acted)
        if len(acted) > _MAX_ITEMS or not all(
            _text(o) and _uint(seq) and _uint(k) for o, seq, k in acted
        ):
            raise DataError("start state: not_acted must be (origin, batch seq, position)")
        object.__setattr__(self, "not_acted", acted)

    @property
    def position_map(self) -> dict[str, int]:
        """The positions as a dict."""
        return dict(self.positions)

    def venue_position_problems(self) -> list[str]:
        """How the venue's own positions (when it was asked) differ from those the run started
        from, one text per symbol (empty: they agree, or the venue was not asked)."""
        if self.venue_positions is None:
            return []
        venue, ours = dict(self.venue_positions), self.position_map
        return [f"{sym}: the venue reports {venue.get(sym, 0):+d}, the chain's records and "
                f"recovered reports make {ours.get(sym, 0):+d}"
                for sym in sorted(set(venue) | set(ours)) if venue.get(sym, 0) != ours.get(sym, 0)]


def _position_pairs(positions: Any) -> tuple[tuple[str, int], ...]:
    """``positions`` as sorted ``(symbol, non-zero int64)`` pairs, each symbol once."""
    pairs = tuple(sorted((s, q) for s, q in positions))
    names = [s for s, _ in pairs]
    if len(set(names)) != len(names):
        raise DataError("start state: a symbol's position is named twice")
    for s, q in pairs:
        if not _text(s) or type(q) is not int or not -_INT64 <= q < _INT64 or q == 0:
            raise DataError(f"start state: position {describe(s)} {describe(q)} is not "
                            "(symbol, non-zero int64)")
    return pairs


def _order_doc(o: StartOrder) -> dict[str, Any]:
    return {k: getattr(o, k) for k in _ORDER_KEYS}


def _exec_doc(e: StartExecution) -> dict[str, Any]:
    return {k: getattr(e, k) for k in _EXEC_KEYS}


def encode_start(state: StartState) -> bytes:
    """The one canonical CBOR encoding of ``state`` (the start IN record's body)."""
    doc: dict[str, Any] = {
        "v": state.version,
        "type": "venue_state",
        "venue": state.venue,
        "positions": [[s, q] for s, q in state.positions],
        "open_orders": [_order_doc(o) for o in state.open_orders],
        "orders": [_order_doc(o) for o in state.orders],
        "executions": [_exec_doc(e) for e in state.executions],
        "not_acted": [[o, seq, k] for o, seq, k in state.not_acted],
    }
    if state.version >= 3:
        doc["venue_positions"] = (None if state.venue_positions is None
                                  else [[s, q] for s, q in state.venue_positions])
    data: bytes = _cbor.encode_canonical(doc)
    return data


def is_start(data: bytes) -> bool:
    """Whether ``data`` looks like an encoded start state (a map with ``type`` =
    ``venue_state``) rather than a batch or a feedback context; :func:`decode_start` still
    checks all of it."""
    return b"\x64type\x6bvenue_state" in data[:96]


def _maps(doc: Any, name: str, keys: frozenset[str]) -> list[dict[str, Any]]:
    value = doc[name]
    if not isinstance(value, list) or len(value) > _MAX_ITEMS or not all(
        isinstance(i, dict) and set(i) == keys for i in value
    ):
        raise DataError(f"start state: {name} must be a list of maps with keys {sorted(keys)}")
    return value


def decode_start(data: bytes) -> StartState:
    """The start state in ``data``; raises :class:`DataError` unless it is exactly canonical
    and well formed (every field, type and bound checked)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DataError(f"start state: expected bytes, got {type(data).__name__}")
    try:
        doc: Any = _cbor.decode(bytes(data), canonical=True, max_depth=4, max_bytes=_MAX_BYTES)
    except _cbor.CborError as exc:
        raise DataError(f"start state: not canonical CBOR: {exc}") from None
    version = doc.get("v") if isinstance(doc, dict) else None
    keys = _KEYS if version == START_VERSION else _KEYS_V2
    if not isinstance(doc, dict) or set(doc) != keys:
        raise DataError(f"start state: expected a map with keys {', '.join(sorted(keys))}")
    if type(version) is not int or version not in (2, START_VERSION) or (
        doc["type"] != "venue_state"
    ):
        raise DataError(f"start state: version {describe(doc['v'])} is not 2 or "
                        f"{START_VERSION} (a version 1 record, signals named by log index, "
                        "is from an older zcbench: read it with that version)")
    venue = doc.get("venue_positions")
    pair_lists = [("positions", doc["positions"], 2), ("not_acted", doc["not_acted"], 3)]
    if venue is not None:
        pair_lists.append(("venue_positions", venue, 2))
    for name, items, n in pair_lists:
        if not isinstance(items, list) or not all(
            isinstance(p, list) and len(p) == n for p in items
        ):
            raise DataError(f"start state: {name} must be a list of {n}-item lists")
    try:
        state = StartState(
            venue=doc["venue"],
            positions=tuple((p[0], p[1]) for p in doc["positions"]),
            open_orders=tuple(StartOrder(**m) for m in _maps(doc, "open_orders", _ORDER_KEYS)),
            orders=tuple(StartOrder(**m) for m in _maps(doc, "orders", _ORDER_KEYS)),
            executions=tuple(StartExecution(**m)
                             for m in _maps(doc, "executions", _EXEC_KEYS)),
            not_acted=tuple((p[0], p[1], p[2]) for p in doc["not_acted"]),
            venue_positions=None if venue is None else tuple((p[0], p[1]) for p in venue),
            version=version,
        )
    except TypeError:
        raise DataError("start state: a field has the wrong type") from None
    if encode_start(state) != bytes(data):
        raise DataError("start state: positions are not sorted by symbol")
    return state
