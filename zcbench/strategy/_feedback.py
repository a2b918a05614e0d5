"""Feedback: what became of a strategy's signals, as the strategy sees it before a batch.

A :class:`Context` holds the outcomes since the previous batch (one :class:`Outcome` per
signal event: sent, refused by a named risk limit, acknowledged, partly or fully filled,
cancelled, expired; each naming the signal it concerns by the seq of the batch that signal
answered and its position among that batch's signals), the positions and the risk limits in
force. :func:`encode_context` writes it as one
deterministic CBOR map (sorted, canonical, so one context has exactly one byte string);
:func:`decode_context` is its strict, bounded reader through ``zcbench._cbor``. Those bytes are
the body a feedback IN record carries (DESIGN.md, "The strategy contract").

Version 3 carries no sequence number: a context's seq (the batch it precedes) is the seq of the
``feedback`` frame or the log record that carries it, the one place it is kept, so one context
has the same bytes whichever batch it precedes (a renumbered replay sends it as logged).
Version 2 bodies (the same map with a ``seq`` key, logged before) are still read, their seq
held to the one given. Version 1 named a signal by the log index of its OUT record, which clock
records (logged at wall-clock moments) shift from run to run, so the same data gave other bytes
live than in the backtest: it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from zcbench import _cbor
from zcbench._cbor import describe
from zcbench.errors import DataError

__all__ = [
    "FEEDBACK_VERSION",
    "MAX_OUTCOMES",
    "OUTCOME_STATUSES",
    "Context",
    "Outcome",
    "context_carries_seq",
    "decode_context",
    "encode_context",
    "is_context",
]

FEEDBACK_VERSION: Final = 3
"""The context body's version: 3 carries no seq (the frame's or the record's is its seq); 2
(with ``seq``) is still read, held to the seq it is given."""
MAX_OUTCOMES: Final = 100_000
"""Most outcomes one context carries."""
MAX_NAMES: Final = 10_000
"""Most symbols (positions) or limits one context carries."""
MAX_TEXT: Final = 256
"""Longest symbol, limit name or reason, in characters."""
OUTCOME_STATUSES: Final = frozenset(
    {"sent", "refused", "acked", "partially_filled", "filled", "cancelled", "expired"}
)
_MAX_BYTES: Final = 64 * 1024 * 1024
_INT64: Final = 2**63
_KEYS: Final = frozenset({"v", "type", "outcomes", "positions", "limits"})
_SEQ_VERSION: Final = 2
"""The last version whose body carries its seq (read, never written)."""
_OUTCOME_KEYS: Final = frozenset(
    {"batch", "signal", "symbol", "status", "limit", "quantity", "price", "reason"}
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One event of one signal: ``batch`` is the seq of the batch whose signals it is one of,
    ``signal`` its position among them (its OUT record's); ``status`` one of
    :data:`OUTCOME_STATUSES`; ``limit`` the risk limit that refused it (``refused`` only, else
    ""); ``quantity``/``price`` the fill's (filled, partially_filled), else the order's
    quantity and None."""

    batch: int
    signal: int
    symbol: str
    status: str
    quantity: int
    limit: str = ""
    price: int | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        _check_outcome(self)


@dataclass(frozen=True, slots=True)
class Context:
    """What the strategy is told before batch ``seq``: outcomes since the previous batch (in
    the order they happened), positions and limits as sorted ``(name, value)`` pairs."""

    seq: int
    outcomes: tuple[Outcome, ...] = ()
    positions: tuple[tuple[str, int], ...] = ()
    limits: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if not _int(self.seq, 0, _INT64 - 1):
            raise DataError(f"feedback: seq {describe(self.seq)} is not a non-negative int")
        object.__setattr__(self, "outcomes", tuple(self.outcomes))
        object.__setattr__(self, "positions", _pairs("positions", self.positions))
        object.__setattr__(self, "limits", _pairs("limits", self.limits))
        if len(self.outcomes) > MAX_OUTCOMES:
            raise DataError(f"feedback: more than {MAX_OUTCOMES} outcomes")
        for o in self.outcomes:
            if not isinstance(o, Outcome):
                raise DataError(f"feedback: outcome {describe(o)} is not an Outcome")

    def position(self, symbol: str) -> int:
        """The position in ``symbol`` (0 when none)."""
        return dict(self.positions).get(symbol, 0)

    def refusals(self) -> tuple[Outcome, ...]:
        """The outcomes that are refusals by a risk limit."""
        return tuple(o for o in self.outcomes if o.status == "refused")


def _int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _text(value: Any) -> bool:
    return type(value) is str and len(value) <= MAX_TEXT


def _where(o: Outcome) -> str:
    """How a check's error names ``o`` (made only when one is raised: every outcome is
    checked, most pass)."""
    return f"feedback outcome of batch {describe(o.batch)}"


def _check_outcome(o: Outcome) -> None:
    if not _int(o.batch, 0, _INT64 - 1) or not _int(o.signal, 0, _INT64 - 1):
        raise DataError(f"{_where(o)}: batch and signal must be non-negative ints")
    if not _text(o.symbol) or not o.symbol:
        raise DataError(f"{_where(o)}: symbol must be a non-empty string of <= {MAX_TEXT} chars")
    if o.status not in OUTCOME_STATUSES or type(o.status) is not str:
        raise DataError(
            f"{_where(o)}: status {describe(o.status)} not in {sorted(OUTCOME_STATUSES)}"
        )
    if not _text(o.limit) or not _text(o.reason):
        raise DataError(f"{_where(o)}: limit and reason must be strings of <= {MAX_TEXT} chars")
    if (o.status == "refused") != bool(o.limit):
        raise DataError(f"{_where(o)}: a refusal names its limit, and only a refusal does")
    if not _int(o.quantity, 0, _INT64 - 1):
        raise DataError(f"{_where(o)}: quantity {describe(o.quantity)} is not a non-negative int")
    if o.price is not None and not _int(o.price, 1, _INT64 - 1):
        raise DataError(f"{_where(o)}: price {describe(o.price)} is not None or a positive int")


def _pairs(what: str, pairs: Any) -> tuple[tuple[str, int], ...]:
    try:
        items = [(name, value) for name, value in pairs]
    except (TypeError, ValueError):
        raise DataError(f"feedback: {what} must be (name, int) pairs") from None
    if len(items) > MAX_NAMES:
        raise DataError(f"feedback: more than {MAX_NAMES} {what}")
    for name, value in items:
        if not _text(name) or not name or not _int(value, -_INT64, _INT64 - 1):
            raise DataError(f"feedback: {what} entry {describe(name)} is not (name, int64)")
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise DataError(f"feedback: {what} name each entry at most once")
    return tuple(sorted(items))


def encode_context(context: Context) -> bytes:
    """The one canonical CBOR encoding of ``context`` (a feedback IN record's body; version 3:
    its seq is not in it, but in the frame or record that carries it)."""
    return _encode(context, with_seq=False)


def _encode(context: Context, *, with_seq: bool) -> bytes:
    doc: dict[str, Any] = {
        "v": _SEQ_VERSION if with_seq else FEEDBACK_VERSION,
        "type": "feedback",
        "outcomes": [
            {
                "batch": o.batch,
                "signal": o.signal,
                "symbol": o.symbol,
                "status": o.status,
                "limit": o.limit,
                "quantity": o.quantity,
                "price": o.price,
                "reason": o.reason,
            }
            for o in context.outcomes
        ],
        "positions": [list(p) for p in context.positions],
        "limits": [list(p) for p in context.limits],
    }
    if with_seq:
        doc["seq"] = context.seq
    data: bytes = _cbor.encode_canonical(doc)
    return data


def is_context(data: bytes) -> bool:
    """Whether ``data`` looks like an encoded context (a map with ``type`` = ``feedback``)
    rather than a batch; cheap, and :func:`decode_context` still checks all of it."""
    return b"\x64type\x68feedback" in data[:64]


def context_carries_seq(data: bytes) -> bool:
    """Whether ``data`` is a version 2 context body (which carries its seq) rather than version
    3: canonical CBOR makes its head a map of six keys, version 3's of five."""
    return bytes(data[:1]) == b"\xa6"


def decode_context(data: bytes, *, seq: int) -> Context:
    """Decode the context for batch ``seq`` (the seq of the frame or the log record that
    carries ``data``); raises :class:`DataError` unless it is exactly canonical and well formed
    (every field, type and bound checked), or for a version 2 body (which carries a seq of its
    own) whose seq is not ``seq``."""
    if not _int(seq, 0, _INT64 - 1):
        raise DataError(f"feedback: seq must be a non-negative int, got {describe(seq)}")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DataError(f"feedback: expected bytes, got {type(data).__name__}")
    try:
        doc = _cbor.decode(bytes(data), canonical=True, max_depth=4, max_bytes=_MAX_BYTES)
    except _cbor.CborError as exc:
        raise DataError(f"feedback: not canonical CBOR: {exc}") from None
    if not isinstance(doc, dict) or set(doc) - {"seq"} != _KEYS:
        raise DataError(f"feedback: expected a map with keys {', '.join(sorted(_KEYS))}")
    version = doc["v"]
    if type(version) is not int or doc["type"] != "feedback" or (version, "seq" in doc) not in (
        (FEEDBACK_VERSION, False), (_SEQ_VERSION, True)
    ):
        raise DataError(f"feedback: version {describe(version)} is not {FEEDBACK_VERSION} "
                        f"(v, type, outcomes, positions, limits) or {_SEQ_VERSION} (with seq); "
                        "a version 1 record, outcomes named by log index, is from an older "
                        "zcbench: read it with that version")
    with_seq = version == _SEQ_VERSION
    if with_seq and (type(doc["seq"]) is not int or doc["seq"] != seq):
        raise DataError(f"feedback: its bytes say seq {describe(doc['seq'])}, it was given as "
                        f"{seq}")
    outcomes = doc["outcomes"]
    if not isinstance(outcomes, list) or len(outcomes) > MAX_OUTCOMES:
        raise DataError(f"feedback: outcomes must be a list of at most {MAX_OUTCOMES}")
    parsed = []
    for item in outcomes:
        if not isinstance(item, dict) or set(item) != _OUTCOME_KEYS:
            raise DataError(f"feedback: an outcome must have keys {sorted(_OUTCOME_KEYS)}")
        parsed.append(Outcome(**item))
    pairs: dict[str, Any] = {}
    for what in ("positions", "limits"):
        value = doc[what]
        if not isinstance(value, list) or not all(
            isinstance(p, list) and len(p) == 2 for p in value
        ):
            raise DataError(f"feedback: {what} must be a list of [name, int] pairs")
        pairs[what] = [tuple(p) for p in value]
    context = Context(seq, tuple(parsed), pairs["positions"], pairs["limits"])
    if _encode(context, with_seq=with_seq) != bytes(data):  # sorted pairs: one encoding per context
        raise DataError("feedback: positions or limits are not sorted by name")
    return context
