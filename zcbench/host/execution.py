"""The execution layer: risk limits, paper fills, positions, PnL and the orders/fills journal.

It acts only on :class:`VerifiedSignals`, which only the host's log writer makes, after the
batch's records and its signed checkpoint are durable and verified (log before act). Every
journal row names the signal that caused it by its batch (``seq``), and the log index of the
OUT record holding it (``log_index``, a locator in this run's log), so an auditor can
reconcile orders with the signed log.

Where orders go is a :class:`Venue` (``zcbench.venue``): the paper venue
(:class:`zcbench.venue.PaperVenue`: resting orders, partial fills against quoted size, the order
types and times in force of the signal's hints) or a FIX 4.4 session
(:class:`zcbench.venue.fix.FixVenue`). Each order is named ``<prefix>-<batch seq>-<position>``
(its ClOrdID, :func:`zcbench.venue.cl_ord_id_for`: never the log index, which clock records
shift from run to run) and carries the signal's log index and hash, so the venue's record maps
back to the signed log. Without a venue, fills are the built-in immediate-or-cancel at the last
market price seen for the symbol (its mark, :func:`zcbench.marketdata.marks`: a trade's price,
else the quote's mid, else a bar's close). Prices are integer ticks of each symbol's
instrument, quantities integer units, and cash and PnL count in the run's account unit
(``units``, the backtest's: :meth:`zcbench.marketdata.Instruments.account`), so PnL is exact.

The journal (``run/journal.jsonl``, :class:`Journal`) is written as the run goes: every batch's
rows are appended and fsynced before :meth:`ExecutionLayer.act` returns, so a host killed at
any moment (SIGKILL included) leaves every order and fill it acted upon on disk. Its first line
is a header naming the run, its origin and its build; it is made whole (written to a temporary
file, fsynced, renamed) so a journal is never empty. :func:`read_journal` reads it whole or from
a byte offset (the live panel's incremental poll); a torn last line is left out and reported,
like the log's torn tail, and ``repair=True`` cuts it away durably.

A refused order's journal rows carry the refusal as data (:class:`zcbench.risk.Refusal`: its
``control``, ``limit_value`` and ``attempted_value`` columns beside the ``reason`` text derived
from them); with ``capital``, orders are also held to the backtest's buying-power rule.

It never sees the enclave's key and never reads a clock: times come in as parameters.
"""

from __future__ import annotations

import collections
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import polars as pl

from zcbench.durable import write_atomically
from zcbench.errors import DataError, EnvError, UsageError
from zcbench.marketdata import Account, last_marks, marks
from zcbench.risk import (
    CONTROLS,
    LIMIT_NOT_REACHED,
    BuyingPower,
    CapitalState,
    Refusal,
    buying_power_refusal,
)
from zcbench.strategy import Signal
from zcbench.venue.orders import (
    Cancel,
    Execution,
    Order,
    Replace,
    cl_ord_id_for,
    order_from_signal,
    signal_of_cl_ord_id,
)

__all__ = [
    "JOURNAL_FILE",
    "JOURNAL_SCHEMA",
    "JOURNAL_SCHEMA_NAME",
    "ExecutionLayer",
    "Journal",
    "JournalRead",
    "OrderResult",
    "RiskLimits",
    "TornJournalRow",
    "Venue",
    "VerifiedSignals",
    "read_journal",
]


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Pre-trade limits. ``price_collar_bps``: how far (basis points) a limit price or the fill
    price may be from the last market price; ``max_orders_per_s``: orders in any one-second
    window; ``max_position`` (units per symbol) and ``max_notional`` (per order and gross, in
    the run's account ticks, 1/money_scale of its currency: price × quantity × the symbol's
    account units, as cash counts) are absolute values."""

    max_position: int = 1_000
    max_notional: int = 10**13
    max_orders_per_s: int = 100
    price_collar_bps: int = 500
    kill_switch: bool = False

    def __post_init__(self) -> None:
        for name in ("max_position", "max_notional", "max_orders_per_s", "price_collar_bps"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise UsageError(f"RiskLimits.{name} must be a non-negative int, got {value!r}")


@dataclass(frozen=True, slots=True)
class VerifiedSignals:
    """Signals of one batch whose IN and OUT records and covering checkpoint are durable and
    verified under the attested log key. Made by the host log writer; ``out_index`` is the log
    index of the OUT record; ``checkpoint_size`` the size of the checkpoint that covers it."""

    seq: int
    out_index: int
    checkpoint_size: int
    signals: tuple[Signal, ...]

    def __post_init__(self) -> None:
        if self.checkpoint_size <= self.out_index:
            raise UsageError(
                f"batch {self.seq}: checkpoint of size {self.checkpoint_size} does not cover "
                f"OUT record {self.out_index}"
            )


class Venue(Protocol):
    """Where the execution layer sends orders. Every call returns the executions it caused
    (:class:`zcbench.venue.Execution`), in the venue's order; :meth:`on_market` also returns
    what arrived since the last call (fills of resting orders, expiries). A venue is
    deterministic given its inputs (the paper venue) or reports what a real session said."""

    name: str

    def on_market(self, events: pl.DataFrame) -> Sequence[Execution]: ...

    def submit(self, order: Order) -> Sequence[Execution]: ...

    def cancel(self, request: Cancel) -> Sequence[Execution]: ...

    def replace(self, request: Replace) -> Sequence[Execution]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class OrderResult:
    """What became of one signal: ``status`` is ``filled``, ``rejected`` or ``unfilled``
    (with a venue also ``partially_filled`` or ``resting``); ``refusal`` says why, as data,
    when it was refused or found no price inside its limit (``reason`` is its text)."""

    seq: int
    log_index: int
    symbol: str
    side: str
    quantity: int
    limit_price: int | None
    status: str
    reason: str = ""
    fill_price: int | None = None
    refusal: Refusal | None = None


JOURNAL_FILE: Final = "journal.jsonl"
JOURNAL_SCHEMA_NAME: Final = "zcbench.journal/2"
_LEGACY_SCHEMA_NAME: Final = "zcbench.journal/1"  # before refusals were data: read, not written
JOURNAL_SCHEMA: Final[dict[str, Any]] = {
    "time_ns": pl.Int64,
    "seq": pl.Int64,
    "log_index": pl.Int64,
    "event": pl.String,  # order | fill | reject
    "symbol": pl.String,
    "side": pl.String,
    "quantity": pl.Int64,
    "limit_price_ticks": pl.Int64,
    "price_ticks": pl.Int64,
    "reason": pl.String,
    "position_after": pl.Int64,
    "cl_ord_id": pl.String,  # the order's ClOrdID ("" without a venue)
    "exec_id": pl.String,  # the venue's ExecID of the row ("" for the order row)
    # a reject's zcbench.risk.Refusal: its control ("" on other rows), limit and attempted value
    "control": pl.String,
    "limit_value": pl.Int64,
    "attempted_value": pl.Int64,
}
# ack, cancel, expire: only with a venue (its acknowledgement, cancel and expiry reports)
_EVENTS: Final = frozenset({"order", "fill", "reject", "ack", "cancel", "expire"})
_TEXT: Final = frozenset({"event", "symbol", "side", "reason", "cl_ord_id", "exec_id", "control"})
_EVENT_OF: Final = {
    "trade": "fill",
    "new": "ack",
    "replaced": "ack",
    "rejected": "reject",
    "cancel_rejected": "reject",
    "canceled": "cancel",
    "expired": "expire",
}
_NULLABLE: Final = frozenset({"limit_price_ticks", "price_ticks", "limit_value", "attempted_value"})
_REFUSAL_COLUMNS: Final = ("control", "limit_value", "attempted_value")
_CONTROL_NAMES: Final = frozenset({"", *CONTROLS})
_LEGACY_KEYS: Final = frozenset(JOURNAL_SCHEMA) - set(_REFUSAL_COLUMNS)
# How a zcbench.journal/1 file's reject reasons name their control, limit and attempted value
# (the texts that version wrote). Read only for such files: a journal written since carries
# the refusal's fields in its rows, and nothing parses a reason's text.
_LEGACY_REASONS: Final = (
    ("kill_switch", re.compile(r"^kill switch"), None, None),
    ("price_collar_bps", re.compile(r"^limit (-?\d+) outside the (\d+) bp collar"), 2, 1),
    ("max_position", re.compile(r"^position would be (-?\d+), limit (\d+)$"), 2, 1),
    ("max_notional", re.compile(r"^order notional (\d+) over (\d+)$"), 2, 1),
    ("max_notional", re.compile(r"^gross notional would be (\d+), limit (\d+)$"), 2, 1),
    ("max_orders_per_s", re.compile(r"^order rate over (\d+)/s$"), 1, None),
    ("no_market_price", re.compile(r"^no market price yet for "), None, None),
    (LIMIT_NOT_REACHED, re.compile(r"^market (-?\d+) through limit (-?\d+)$"), 2, 1),
)


class Journal:
    """The run's orders/fills journal on disk: JSON lines, appended and fsynced per batch.

    Make one with :meth:`create` (it refuses an existing file: a journal is never reused). An
    error writing it raises :class:`~zcbench.errors.EnvError` naming the file, and the journal
    refuses every later append (after a failed fsync the kernel may have dropped the data, so
    nothing more can be promised durable).
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd
        self._failed: str | None = None
        self.rows = 0

    @classmethod
    def create(cls, path: Path, *, run_id: str, origin: str, image: str,
               continues: str | None = None, account: Account | None = None) -> Journal:
        """Create ``path`` holding only the header line, durably (never an empty file).
        ``continues``: the folder of the run this one continues (named in the header);
        ``account``: the run's money (its ``to_json`` keys go in the header; default the
        schema's unit)."""
        path = Path(path)
        money = account if account is not None else Account()
        header: dict[str, Any] = {
            "schema": JOURNAL_SCHEMA_NAME,
            "run_id": run_id,
            "origin": origin,
            "image": image,
            "price_unit": "a symbol's integer price unit: 1/(money_scale / units[symbol]) "
            f"{money.currency}",
            **money.to_json(),
        }
        if continues is not None:
            header["continues"] = continues
        line = json.dumps(header, sort_keys=True).encode() + b"\n"
        if path.exists():
            raise UsageError(f"journal {path} already exists; a run folder is never reused")
        try:
            write_atomically(path, line)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise EnvError(f"could not create the journal {path}: {exc.strerror or exc}") from None
        return cls(path, fd)

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append ``rows`` (one JSON line each) and fsync before returning."""
        if self._failed is not None:
            raise EnvError(f"the journal {self.path} failed earlier ({self._failed}); not written")
        if self._fd is None:
            raise UsageError(f"the journal {self.path} is closed")
        if not rows:
            return
        data = b"".join(json.dumps(dict(r), sort_keys=True).encode() + b"\n" for r in rows)
        try:
            _write_all(self._fd, data)
            os.fsync(self._fd)
        except OSError as exc:
            self._failed = exc.strerror or str(exc)
            raise EnvError(f"writing the journal {self.path} failed: {self._failed}") from None
        self.rows += len(rows)

    def close(self) -> None:
        """Close the file (every row appended is already durable); idempotent."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _last_quotes(frame: pl.DataFrame) -> dict[str, tuple[int, int]]:
    """The bid and ask of each symbol whose last mark in ``frame`` is a quote's mid (a row with
    both sides and no trade price: :func:`zcbench.marketdata.marks`)."""
    columns = frame.columns
    if not frame.height or not {"symbol", "bid", "ask"} <= set(columns):
        return {}
    if frame.height in (frame.get_column("bid").null_count(), frame.get_column("ask").null_count()):
        return {}  # no row has both sides (a bar or trade stream): no quote, and no query
    mark = marks(frame).to_list()
    symbols, bid, ask = (frame.get_column(c).to_list() for c in ("symbol", "bid", "ask"))
    price = frame.get_column("price").to_list() if "price" in columns else [None] * len(mark)
    seen: set[str] = set()
    out: dict[str, tuple[int, int]] = {}
    for i in range(len(mark) - 1, -1, -1):
        symbol = symbols[i]
        if mark[i] is None or symbol is None or symbol in seen:
            continue
        seen.add(symbol)
        if price[i] is None and bid[i] is not None and ask[i] is not None:
            out[symbol] = (int(bid[i]), int(ask[i]))
    return out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass(frozen=True, slots=True)
class TornJournalRow:
    """Bytes at the end of the journal that are not a whole row: where, how many, and why."""

    path: str
    offset: int
    length: int
    reason: str

    def describe(self) -> str:
        """One line for people."""
        return (
            f"torn last row of the journal cut back: {self.length} bytes at byte {self.offset} "
            f"of {Path(self.path).name} ({self.reason})"
        )


@dataclass(frozen=True)
class JournalRead:
    """What :func:`read_journal` found: the header, the whole rows read (as a frame in
    :data:`JOURNAL_SCHEMA`), the offset just past the last whole row (where the next
    incremental read starts) and a torn last row, if any."""

    path: Path
    header: dict[str, Any]
    rows: pl.DataFrame
    end: int
    torn: TornJournalRow | None = None


def read_journal(path: Path, *, offset: int = 0, repair: bool = False) -> JournalRead:
    """The journal at ``path`` (a run folder or the file), from byte ``offset`` on.

    ``offset`` 0 reads it whole; a later call with the previous :attr:`JournalRead.end` reads
    only what was appended since (the header is read again, a few bytes). A last line that is
    not a whole row (no newline, not a row) is a torn tail: left out and reported; with
    ``repair`` it is cut away (truncate and fsync). Damage followed by whole rows raises
    :class:`~zcbench.errors.DataError` naming the byte; a missing file
    :class:`~zcbench.errors.EnvError`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / JOURNAL_FILE
    try:
        with open(path, "rb") as f:
            first = f.readline()
            header = _header(path, first)
            start = max(offset, len(first))
            f.seek(start)
            data = f.read()
    except FileNotFoundError:
        raise EnvError(
            f"{path} does not exist: is this a run folder made by 'zcbench run'?"
        ) from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not a journal") from None
    except OSError as exc:
        raise EnvError(f"could not read the journal {path}: {exc.strerror or exc}") from None
    rows: list[dict[str, Any]] = []
    torn: TornJournalRow | None = None
    legacy = header["schema"] == _LEGACY_SCHEMA_NAME
    keys = _LEGACY_KEYS if legacy else frozenset(JOURNAL_SCHEMA)
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        line = data[pos:] if nl < 0 else data[pos:nl]
        reason = "no newline at its end" if nl < 0 else _row_problem(line, keys)
        if reason:
            if 0 <= nl < len(data) - 1:
                raise DataError(
                    f"journal {path}: damaged row at byte {start + pos} ({reason}) followed by "
                    "more rows: damage in the middle, not a torn tail"
                )
            torn = TornJournalRow(str(path), start + pos, len(data) - pos, reason)
            break
        row = json.loads(line)
        rows.append(_legacy_row(row) if legacy else row)
        pos = nl + 1
    end = start + pos
    if torn is not None and repair:
        try:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.ftruncate(fd, end)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise EnvError(f"could not cut the journal {path}: {exc.strerror or exc}") from None
    return JournalRead(path, header, pl.DataFrame(rows, schema=JOURNAL_SCHEMA), end, torn)


def _header(path: Path, line: bytes) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if (
        not line.endswith(b"\n")
        or not isinstance(header, dict)
        or header.get("schema") not in (JOURNAL_SCHEMA_NAME, _LEGACY_SCHEMA_NAME)
    ):
        raise DataError(f"{path} is not a zcbench journal (its first line is no journal header)")
    return header


def _legacy_row(row: dict[str, Any]) -> dict[str, Any]:
    """A zcbench.journal/1 row with the refusal columns its reject's reason names."""
    control, limit, attempted = "", None, None
    if row["event"] == "reject":
        control = "venue"
        for name, pattern, limit_group, attempted_group in _LEGACY_REASONS:
            found = pattern.match(row["reason"])
            if found:
                control = name
                limit = int(found.group(limit_group)) if limit_group else None
                attempted = int(found.group(attempted_group)) if attempted_group else None
                break
    return {**row, "control": control, "limit_value": limit, "attempted_value": attempted}


def _row_problem(line: bytes, keys: frozenset[str]) -> str:
    """Why ``line`` is not a journal row with ``keys`` ("" when it is one)."""
    try:
        row = json.loads(line)
    except ValueError:
        return "not JSON"
    if not isinstance(row, dict) or set(row) != keys:
        return "not a journal row"
    for name, value in row.items():
        if name in _TEXT:
            ok = isinstance(value, str)
        else:
            ok = (type(value) is int) or (value is None and name in _NULLABLE)
        if not ok:
            return f"bad {name}"
    if row["event"] not in _EVENTS:
        return "bad event"
    if row.get("control", "") not in _CONTROL_NAMES:
        return "bad control"
    return ""


@dataclass
class ExecutionLayer:
    """Risk-checked execution with positions, PnL and a journal.

    With ``journal``, every batch's rows are durable in it before :meth:`act` returns. With
    ``venue``, orders go there (module docstring), named after ``order_prefix`` (the run id,
    so ClOrdIDs stay unique over a chain of runs), and positions and cash follow its fills.
    With ``capital``, every order is also checked against ``buying_power``
    (:func:`zcbench.risk.buying_power_refusal`, the backtest's rule) with the account's equity
    (capital, cash paid and received, positions at their last prices) and the order at the last
    market price; without it, capital does not bind. ``capital`` is in the account's unit of
    money and ``units[symbol]`` says how many of those one of the symbol's price units is (1 when
    absent: every symbol in the schema's ticks), as the backtest's accounting counts
    (``zcbench.marketdata.Instruments.money_units``). ``fee`` (the backtest's
    ``FillModel.fee``: notional in the account's unit to the fee, rounded up) is paid out of
    cash on every venue fill and counted in the buying-power check, so cash and PnL are the
    backtest's after fees; None (a live run): no fee is charged here. ``lots[symbol]`` (the
    instrument's lot size, ``Account.lots``; 1 when absent): an order for a quantity that is
    not a whole number of lots is refused (``lot_size``), as the backtest refuses it.
    """

    limits: RiskLimits = field(default_factory=RiskLimits)
    journal_file: Journal | None = None
    venue: Venue | None = None
    order_prefix: str = "Z"
    capital: int | None = None
    buying_power: BuyingPower = field(default_factory=BuyingPower)
    units: Mapping[str, int] = field(default_factory=dict)
    fee: Callable[[int], int] | None = None
    lots: Mapping[str, int] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    cash: int = 0
    _prices: dict[str, int] = field(default_factory=dict)
    _unpriced: list[pl.DataFrame] = field(default_factory=list)
    killed: str | None = None
    _recent: collections.deque[int] = field(default_factory=collections.deque)
    _rows: list[dict[str, Any]] = field(default_factory=list)
    _counts: dict[str, int] = field(default_factory=lambda: {"order": 0, "fill": 0, "reject": 0})
    _refused: collections.Counter[str] = field(default_factory=collections.Counter)
    _journaled: int = 0
    _now: int = 0
    _orders: dict[str, tuple[int, int]] = field(default_factory=dict)  # ClOrdID: seq, log index
    _unmarked: dict[str, int] = field(default_factory=dict)  # carried, not yet priced this run
    _quotes: dict[str, tuple[int, int]] = field(default_factory=dict)  # bid, ask: last a quote

    def __post_init__(self) -> None:
        if self.limits.kill_switch:
            self.killed = "kill switch set in the risk limits"
        if self.capital is not None and (type(self.capital) is not int or self.capital <= 0):
            raise UsageError(f"capital must be a positive int (ticks x units): {self.capital!r}")

    def kill(self, reason: str) -> None:
        """Engage the kill switch: every later order is rejected with ``reason``."""
        if self.killed is None:
            self.killed = reason

    def carry(self, positions: Mapping[str, int]) -> None:
        """Start from ``positions`` carried from a previous run (a continuing run's start
        state). The PnL counts from them: each enters at its symbol's mark after the first
        batch of this run that prices it (the batch's last price, the tear sheet's mark), as
        if bought (or sold short) there, so :meth:`pnl` is what this run made, not the
        carried positions' whole value against no cash (DESIGN.md, "Restart continuity")."""
        self.positions.clear()
        self.positions.update(positions)
        self._unmarked = {s: q for s, q in positions.items() if q}

    def _mark_carried(self, events: pl.DataFrame) -> None:
        """Price the carried positions ``events`` prices at their last mark in it."""
        for symbol, px in last_marks(events).items():
            if symbol in self._unmarked:
                self._pay(symbol, self._unmarked.pop(symbol), px)

    def on_market(self, events: pl.DataFrame, *, now_ns: int | None = None) -> None:
        """Note a batch of market events (any columns among symbol, price, bid, ask, close).

        Prices are worked out lazily, when an order or the PnL needs them: most batches carry
        no signal, and one pass over many batches is much cheaper than one per batch.
        ``now_ns`` (the clock :meth:`act` takes) stamps the journal rows of the venue's
        reports these events cause (a resting order's fill or expiry); None keeps the clock
        of the last :meth:`act`.
        """
        if now_ns is not None:
            self._now = now_ns
        if "symbol" in events.columns and events.height:
            if self._unmarked:
                self._mark_carried(events)
            self._unpriced.append(events)
            if self.venue is not None:
                self._record(self.venue.on_market(events), 0)

    def defers_market(self) -> bool:
        """Whether market events may reach :meth:`on_market` later, several batches in one
        frame, with the same outcome: nothing rests at the venue (so they fill and expire
        nothing, and only each symbol's last price matters) and no carried position waits for
        its first mark."""
        return not self._unmarked and not self.rests()

    @property
    def last_price(self) -> dict[str, int]:
        """The last market price (ticks) seen per symbol."""
        if self._unpriced:
            frames, self._unpriced = self._unpriced, []
            # how many symbols were seen, counted by polars: turning every row's symbol into a
            # Python string held the interpreter lock for ~20 ms per 256 batches of 1,000
            # events, and the set of them (``unique``, a query) cost ~60 us a call where the
            # count (``n_unique``, a null counting as one) costs under 1
            columns = [f.get_column("symbol") for f in frames]
            if any(c.dtype != pl.String for c in columns):  # a feed's own (categorical, null)
                columns = [c.cast(pl.String) for c in columns]
            symbols = pl.concat(columns, rechunk=False)
            wanted = symbols.n_unique() - (1 if symbols.null_count() else 0)
            found: dict[str, int] = {}
            sides: dict[str, tuple[int, int] | None] = {}
            # newest first, so each symbol's last mark is met first; stop once all are known
            for frame in reversed(frames):
                quotes = _last_quotes(frame) if self.capital is not None else {}
                for symbol, px in last_marks(frame).items():
                    if symbol not in found:
                        found[symbol], sides[symbol] = px, quotes.get(symbol)
                if len(found) == wanted:
                    break
            self._prices.update(found)
            for symbol, side in sides.items():
                if side is None:
                    self._quotes.pop(symbol, None)
                else:
                    self._quotes[symbol] = side
        return self._prices

    def act(
        self, verified: VerifiedSignals, *, now_ns: int, market_ns: int | None = None
    ) -> list[OrderResult]:
        """Place (on paper) every signal of a verified batch, in order, under the risk limits.

        ``now_ns`` stamps the journal rows; the order-rate limit counts orders per second of
        ``market_ns`` (the batch's newest event time, the clock a backtest shares with a live
        run and its replay) or, without it, of ``now_ns``."""
        if not isinstance(verified, VerifiedSignals):
            raise UsageError("the execution layer acts only on VerifiedSignals from the log")
        self._now = now_ns
        rate_ns = now_ns if market_ns is None else market_ns
        results = [
            self._place(verified.seq, verified.out_index, k, s, rate_ns)
            for k, s in enumerate(verified.signals)
        ]
        first, self._journaled = self._journaled, len(self._rows)
        if self.journal_file is not None:
            self.journal_file.append(self._rows[first:])
        return results

    def rests(self) -> bool:
        """Whether an order may rest at the venue (so a batch's market events may fill or
        expire it): never without a venue; with one, what its ``resting()`` says (a venue
        without that method: always)."""
        if self.venue is None:
            return False
        resting = getattr(self.venue, "resting", None)
        return True if resting is None else bool(resting())

    def journal_rows(self) -> int:
        """How many journal rows there are so far."""
        return len(self._rows)

    def rows_since(self, start: int) -> list[dict[str, Any]]:
        """The journal rows from row ``start`` on (the feedback of the next batch)."""
        return self._rows[start:]

    def close(self) -> None:
        """Close the journal file (its rows are already durable)."""
        if self.journal_file is not None:
            self.journal_file.close()
        if self.venue is not None:
            self.venue.close()

    def _place(self, seq: int, log_index: int, k: int, s: Signal, rate_ns: int) -> OrderResult:
        def done(
            status: str, refusal: Refusal | None = None, price: int | None = None, text: str = ""
        ) -> OrderResult:
            reason = refusal.text if refusal is not None else text
            return OrderResult(seq, log_index, s.symbol, s.side, s.quantity, s.limit_price,
                               status, reason, price, refusal)

        now_ns = self._now
        cl_ord_id = cl_ord_id_for(self.order_prefix, seq, k) if self.venue is not None else ""
        self._journal(now_ns, seq, log_index, "order", s, None, None, cl_ord_id)
        refusal = self._refusal(s, rate_ns)
        if refusal is not None:
            self._journal(now_ns, seq, log_index, "reject", s, None, refusal, cl_ord_id)
            return done("rejected", refusal)
        self._recent.append(rate_ns)
        if self.venue is not None:
            return self._send(seq, log_index, k, s, cl_ord_id, done)
        px = self.last_price[s.symbol]
        if s.limit_price is not None and (
            (s.side == "buy" and px > s.limit_price) or (s.side == "sell" and px < s.limit_price)
        ):
            refusal = Refusal(LIMIT_NOT_REACHED, limit=s.limit_price, attempted=px)
            self._journal(now_ns, seq, log_index, "reject", s, px, refusal)
            return done("unfilled", refusal)
        signed = s.quantity if s.side == "buy" else -s.quantity
        self.positions[s.symbol] = self.positions.get(s.symbol, 0) + signed
        self._pay(s.symbol, signed, px)
        self._journal(now_ns, seq, log_index, "fill", s, px, None)
        return done("filled", None, px)

    def _refusal(self, s: Signal, rate_ns: int) -> Refusal | None:
        """Why the risk limits and the buying power refuse ``s`` now (None: they do not)."""
        lim = self.limits
        if self.killed is not None:
            return Refusal("kill_switch", limit=1, attempted=None, detail=self.killed)
        lot = self.lots.get(s.symbol, 1)
        if s.quantity % lot:
            return Refusal("lot_size", limit=lot, attempted=s.quantity)
        px = self.last_price.get(s.symbol)
        if px is None:
            return Refusal("no_market_price", detail=s.symbol)
        if (
            s.limit_price is not None
            and abs(s.limit_price - px) * 10_000 > px * lim.price_collar_bps
        ):
            return Refusal("price_collar_bps", limit=lim.price_collar_bps,
                           attempted=s.limit_price, reference=px)
        signed = s.quantity if s.side == "buy" else -s.quantity
        before = self.positions.get(s.symbol, 0)
        after = before + signed
        if abs(after) > lim.max_position:
            return Refusal("max_position", limit=lim.max_position, attempted=after)
        # notional in the account's unit (price x quantity x units), as cash and PnL count, so
        # one limit means the same amount of money for every instrument and the gross sums
        # instruments quoted to different decimals
        units = self.units
        unit = units.get(s.symbol, 1)
        if s.quantity * px * unit > lim.max_notional:
            return Refusal("max_notional", limit=lim.max_notional,
                           attempted=s.quantity * px * unit, detail="order")
        prices = self.last_price
        gross = sum(abs(q) * prices.get(sym, 0) * units.get(sym, 1)
                    for sym, q in self.positions.items())
        gross += (abs(after) - abs(before)) * px * unit
        if gross > lim.max_notional:
            return Refusal("max_notional", limit=lim.max_notional, attempted=gross,
                           detail="gross")
        if self.capital is not None:
            # at the price the order takes: after a quote its ask for a buy, its bid for a sale
            # (the paper venue's fill, the backtest's), else the last mark
            quote = self._quotes.get(s.symbol)
            at = px if quote is None else quote[1] if s.side == "buy" else quote[0]
            refusal = self._capital_refusal(s.symbol, before, after, at)
            if refusal is not None:
                return refusal
        while self._recent and self._recent[0] <= rate_ns - 1_000_000_000:
            self._recent.popleft()
        if len(self._recent) >= lim.max_orders_per_s:
            return Refusal("max_orders_per_s", limit=lim.max_orders_per_s,
                           attempted=len(self._recent) + 1)
        return None

    def _pay(self, symbol: str, signed_qty: int, px: int) -> None:
        """Cash for ``signed_qty`` of ``symbol`` bought (sold: negative) at ``px``."""
        self.cash -= signed_qty * px * self.units.get(symbol, 1)

    def _capital_refusal(self, symbol: str, before: int, after: int, px: int) -> Refusal | None:
        """The buying-power rule on the account before and after ``symbol`` goes from
        ``before`` to ``after`` at ``px`` (every other position at its last price), in the
        account's unit (the backtest's accounting, ``zcbench.backtest._accounting.book``)."""
        assert self.capital is not None
        prices, units = self.last_price, self.units
        long_b = short_b = 0
        for other, held in self.positions.items():
            if held and other != symbol and other not in self._unmarked:
                value = abs(held) * prices.get(other, 0) * units.get(other, 1)
                long_b, short_b = (
                    (long_b + value, short_b) if held > 0 else (long_b, short_b + value)
                )
        price = px * units.get(symbol, 1)
        long_a = long_b + (after * price if after > 0 else 0)
        short_a = short_b + (-after * price if after < 0 else 0)
        long_b += before * price if before > 0 else 0
        short_b += -before * price if before < 0 else 0
        fee = 0 if self.fee is None else self.fee(abs(after - before) * price)
        equity_after = (
            self.capital + self.cash - (after - before) * price - fee + long_a - short_a
        )
        return buying_power_refusal(
            self.buying_power,
            equity_after=equity_after,
            long_before=long_b,
            short_before=short_b,
            long_after=long_a,
            short_after=short_a,
        )

    def _send(
        self,
        seq: int,
        log_index: int,
        k: int,
        s: Signal,
        cl_ord_id: str,
        done: Callable[..., OrderResult],
    ) -> OrderResult:
        assert self.venue is not None
        try:
            order = order_from_signal(s, cl_ord_id=cl_ord_id, log_index=log_index, signal_pos=k)
        except DataError as exc:
            refusal = Refusal("invalid_order", detail=str(exc))
            self._journal(self._now, seq, log_index, "reject", s, None, refusal, cl_ord_id)
            return done("rejected", refusal)
        self._orders[cl_ord_id] = (seq, log_index)
        reports = self._record(self.venue.submit(order), seq)
        mine = [e for e in reports if e.cl_ord_id == cl_ord_id]
        if not mine:
            return done("resting", text="no report yet from the venue")
        last = mine[-1]
        px = last.cum_notional // last.cum_qty if last.cum_qty else None
        if last.ord_status == "rejected":
            return done("rejected", Refusal("venue", detail=last.text))
        if last.ord_status == "filled":
            return done("filled", None, px)
        if last.leaves_qty == 0:
            return done("partially_filled" if last.cum_qty else "unfilled", None, px, last.text)
        return done("partially_filled" if last.cum_qty else "resting", None, px)

    def _record(self, reports: Sequence[Execution], seq: int) -> list[Execution]:
        """Journal the venue's reports and apply its fills to positions and cash."""
        out = list(reports)
        for e in out:
            if e.exec_type == "trade":
                self.positions[e.symbol] = self.positions.get(e.symbol, 0) + e.signed_qty
                self._pay(e.symbol, e.signed_qty, e.last_px)
                if self.fee is not None:
                    self.cash -= self.fee(e.last_qty * e.last_px * self.units.get(e.symbol, 1))
            event = _EVENT_OF[e.exec_type]
            placed = self._orders.get(e.cl_ord_id)
            if placed is None:  # an earlier run's order (carried): its ClOrdID names its signal
                named = signal_of_cl_ord_id(e.cl_ord_id)
                placed = (seq if named is None else named[1], e.log_index)
            seq_of, log_index = placed
            self._counts[event] = self._counts.get(event, 0) + 1
            if event == "reject":
                self._refused["venue"] += 1
            self._rows.append(
                {
                    "time_ns": self._now,
                    "seq": seq_of,
                    "log_index": log_index,
                    "event": event,
                    "symbol": e.symbol,
                    "side": e.side,
                    "quantity": e.last_qty if e.exec_type == "trade" else e.order_qty,
                    "limit_price_ticks": None,
                    "price_ticks": e.last_px if e.exec_type == "trade" else None,
                    "reason": e.text,
                    "position_after": self.positions.get(e.symbol, 0),
                    "cl_ord_id": e.cl_ord_id,
                    "exec_id": e.exec_id,
                    "control": "venue" if event == "reject" else "",
                    "limit_value": None,
                    "attempted_value": None,
                }
            )
        return out

    def _journal(
        self,
        now_ns: int,
        seq: int,
        log_index: int,
        event: str,
        s: Signal,
        price: int | None,
        refusal: Refusal | None,
        cl_ord_id: str = "",
        exec_id: str = "",
    ) -> None:
        self._counts[event] = self._counts.get(event, 0) + 1
        if refusal is not None:
            self._refused[refusal.control] += 1
        self._rows.append(
            {
                "time_ns": now_ns,
                "seq": seq,
                "log_index": log_index,
                "event": event,
                "symbol": s.symbol,
                "side": s.side,
                "quantity": s.quantity,
                "limit_price_ticks": s.limit_price,
                "price_ticks": price,
                "reason": refusal.text if refusal is not None else "",
                "position_after": self.positions.get(s.symbol, 0),
                "cl_ord_id": cl_ord_id,
                "exec_id": exec_id,
                "control": refusal.control if refusal is not None else "",
                "limit_value": refusal.limit if refusal is not None else None,
                "attempted_value": refusal.attempted if refusal is not None else None,
            }
        )

    def pnl(self) -> int:
        """Mark-to-market PnL in the account's unit (price x quantity x ``units``, as the
        backtest counts): cash plus positions at the last prices (the carried positions of a
        continuing run count from their first price, :meth:`carry`)."""
        prices, units = self.last_price, self.units
        return self.cash + sum(
            q * prices.get(sym, 0) * units.get(sym, 1) for sym, q in self.positions.items()
        )

    def counts(self) -> dict[str, int]:
        """How many journal rows of each event kind."""
        return dict(self._counts)

    def refusals(self) -> dict[str, int]:
        """How many orders each control refused so far (the journal's reject rows by their
        ``control``, a name of :data:`zcbench.risk.CONTROLS`), in sorted order."""
        return dict(sorted(self._refused.items()))

    def capital_state(self) -> CapitalState | None:
        """The account under the buying-power rule now (None when capital does not bind):
        the capital plus the cash fills moved, the equity with every position at its last
        price, and the equity the positions need, as :meth:`_capital_refusal` counts them (a
        carried position not yet priced in this run counts in neither)."""
        if self.capital is None:
            return None
        prices, units = self.last_price, self.units
        long = short = 0
        for symbol, held in self.positions.items():
            if held and symbol not in self._unmarked:
                value = held * prices.get(symbol, 0) * units.get(symbol, 1)
                long, short = (long + value, short) if held > 0 else (long, short - value)
        cash = self.capital + self.cash
        need = self.buying_power.requirement(long, short)
        return CapitalState(cash=cash, equity=cash + long - short,
                            used=-(-need.numerator // need.denominator))

    def journal(self) -> pl.DataFrame:
        """The orders/fills journal so far, in :data:`JOURNAL_SCHEMA`."""
        return pl.DataFrame(self._rows, schema=JOURNAL_SCHEMA)

