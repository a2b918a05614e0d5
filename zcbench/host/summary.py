"""What a live run reports: the progress line's snapshot and the run summary (``summary.json``).

Latencies in both come from :mod:`zcbench.host._stats` (one distribution shape, one percentile
definition).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RunProgress", "RunSummary"]


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

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    def to_json(self) -> dict[str, Any]:
        """The summary as written to ``summary.json`` (money in ticks: ``pnl_ticks``)."""
        out = {"schema": "zcbench.run-summary/1", **asdict(self)}
        out["pnl_ticks"] = out.pop("pnl")
        return out
