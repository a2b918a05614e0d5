"""What a live run reports: the progress line's snapshot and the run summary (``summary.json``).

Latencies in both come from :mod:`zcbench.host._stats` (one distribution shape, one percentile
definition).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zcbench.marketdata import Account
from zcbench.money import format_money
from zcbench.risk import INSUFFICIENT_CASH, INSUFFICIENT_MARGIN, CapitalState
from zcbench.strategy import PRICE_SCALE

__all__ = ["SUMMARY_FILE", "RunProgress", "RunSummary", "recorded_account", "run_account",
           "write_summary"]

SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class RunProgress:
    """A snapshot for the live progress line."""

    batches: int
    events: int
    signals: int
    events_per_s: float
    freshness_p50_ms: float
    freshness_p99_ms: float
    pnl: int
    orders: int = 0
    fills: int = 0
    rejects: int = 0
    positions: Mapping[str, int] = field(default_factory=dict)
    kill_switch: str | None = None
    currency: str = "USD"
    money_scale: int = PRICE_SCALE
    """``pnl`` is in units of ``1 / money_scale`` of ``currency`` (the run's account)."""
    capital: CapitalState | None = None
    """The account under the buying-power rule (None when capital does not bind)."""
    refusals: Mapping[str, int] = field(default_factory=dict)
    """Orders refused so far by each control (``insufficient_cash``, ``max_position``, ...)."""


@dataclass(frozen=True)
class RunSummary:
    """How a live run went; ``status`` is ``completed``, ``stopped``, ``enclave_died``,
    ``strategy_failed``, ``enclave_error``, ``verification_failed``, ``host_error`` or
    ``interrupted`` (Ctrl-C or SIGTERM; what was logged and acted on is kept).
    ``dropped_*``: batches the proxy's bounded queue dropped (each stretch is also a note record
    in the signed log).
    ``freshness_*``: wall time from the proxy receiving a batch's newest event to its signals
    being acted on (p50, p99 and the whole distribution as batches per bucket);
    ``batch_rtt_*``: from sending a batch to receiving its signed reply."""

    run_id: str
    origin: str
    status: str
    reason: str
    run_dir: str
    image: str
    batches: int
    events: int
    signals: int
    orders: int
    fills: int
    rejects: int
    pnl: int
    positions: dict[str, int]
    log_size: int
    elapsed_s: float
    events_per_s: float
    freshness_p50_ms: float
    freshness_p99_ms: float
    batch_rtt_p50_ms: float
    batch_rtt_p99_ms: float
    freshness_histogram: dict[str, int]
    dropped_batches: int
    dropped_events: int
    isolated_network: bool
    simulated: bool
    trust: str
    attestation: str | None = None
    risk_limits: dict[str, int] | None = None
    """The limits in force when the run ended (each change is a control record in the log)."""
    capital: dict[str, Any] | None = None
    """The capital the buying-power rule held orders to (None: it did not bind): ``amount`` in
    the account's unit of money, ``money_scale`` of which make one currency unit, with the
    rule's ``leverage`` and ``short_margin``."""
    cash: int | None = None
    equity: int | None = None
    buying_power_used: int | None = None
    """With capital, the account at the end (:class:`zcbench.risk.CapitalState`, in the
    account's unit: JSON ``cash_ticks``, ``equity_ticks``, ``buying_power_used_ticks``)."""
    refusals: dict[str, int] = field(default_factory=dict)
    """Orders refused by each control (``insufficient_cash``, ``insufficient_margin``,
    ``max_position``, ...; the journal's reject rows by their ``control``)."""
    currency: str = "USD"
    money_scale: int = PRICE_SCALE
    units: dict[str, int] = field(default_factory=dict)
    """The run's account (:class:`zcbench.marketdata.Account`): ``pnl`` is in units of
    ``1 / money_scale`` of ``currency``; ``units`` per symbol the account units in one of its
    integer price units (the journal's ``price_ticks``)."""

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    def capital_text(self) -> str:
        """The capital the run's orders were held to, for people (the CLI's summary, the demo):
        the capital and its rule, the cash and buying power used at the end, and the orders
        refused for lack of either."""
        if self.capital is None:
            return "capital did not bind (no buying-power check)"

        def money(ticks: int | None) -> str:
            return "?" if ticks is None else format_money(
                ticks, scale=self.money_scale, currency=self.currency)

        c = self.capital
        refused = ", ".join(f"{self.refusals.get(name, 0)} {name}"
                            for name in (INSUFFICIENT_CASH, INSUFFICIENT_MARGIN))
        return (
            f"capital {money(c['amount'])} (leverage {c['leverage']:g}, short margin "
            f"{c['short_margin']:g}): cash {money(self.cash)}, buying power used "
            f"{money(self.buying_power_used)} of {money(self.equity)} equity; refused {refused}"
        )

    def to_json(self) -> dict[str, Any]:
        """The summary as written to ``summary.json`` (money as an integer: ``pnl_ticks``, in
        units of ``1 / money_scale`` of ``currency``)."""
        out = {"schema": "zcbench.run-summary/1", **asdict(self)}
        out["pnl_ticks"] = out.pop("pnl")
        for name in ("cash", "equity", "buying_power_used"):
            out[f"{name}_ticks"] = out.pop(name)
        return out


def write_summary(run_dir: str | Path, summary: RunSummary) -> Path:
    """Write ``summary`` as ``run_dir/summary.json``, whole
    (:func:`zcbench.durable.write_atomically`: a crash mid-write leaves the previous file, or
    none, never a torn one). OSErrors propagate."""
    from zcbench.durable import write_atomically

    path = Path(run_dir) / SUMMARY_FILE
    write_atomically(path, (json.dumps(summary.to_json(), indent=2) + "\n").encode())
    return path


def run_account(run_dir: str | Path) -> Account | None:
    """The account a run recorded its money in: ``summary.json``'s, else its journal header's
    (written at the start, so a killed host's run has it too); None for a run that recorded
    none (made before runs did, or no readable file). Every surface that shows a run's money
    (the CLI, the live panel, the LP report, the tear sheet) takes the unit from the run's own
    record (here, or :func:`recorded_account` on what it already read) rather than working it
    out again from instruments. A malformed record raises :class:`~zcbench.errors.DataError`."""
    run = Path(run_dir)
    summary = run / "summary.json"
    try:
        obj = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        obj = None
    journal = run / "journal.jsonl"
    try:
        with open(journal, "rb") as f:
            header = json.loads(f.readline(1 << 16))
    except (OSError, ValueError):
        header = None
    return recorded_account(obj if isinstance(obj, dict) else None,
                            header if isinstance(header, dict) else None, source=str(run))


def recorded_account(summary: Mapping[str, Any] | None, journal_header: Mapping[str, Any] | None,
                     *, source: str) -> Account | None:
    """The account in a run's ``summary`` (its ``summary.json``), else in its journal's header;
    None when neither records one."""
    for obj, name in ((summary, "summary.json"), (journal_header, "journal.jsonl")):
        if obj is not None and (found := Account.from_json(obj, source=f"{source}/{name}")):
            return found
    return None
