"""The feedback a live run hands the strategy: journal rows turned into a logged context.

:class:`FeedbackBuilder` turns the execution layer's journal rows since the previous feedback
into a :class:`zcbench.strategy.Context` for the next batch: one :class:`~zcbench.strategy.Outcome`
per row (order → ``sent``, a risk refusal → ``refused`` naming its control, the journal row's
``control`` as :class:`zcbench.risk.Refusal` named it, ack → ``acked``, fill
→ ``filled`` with that fill's quantity and price, cancel → ``cancelled``, expire and a paper IOC
that found no price inside its limit → ``expired``), the positions and the risk limits in force.
Each outcome names the signal that caused it by its batch (the journal row's ``seq``) and its
position among that batch's signals (the ClOrdID's last part, or the order rows counted): never
by log index, which clock records shift from run to run, so a backtest builds the same bytes.
The host sends the encoded context before the batch; the enclave logs it as an IN record of
that batch's seq and hands it to the strategy (DESIGN.md, "The live run").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from zcbench.host.execution import ExecutionLayer, RiskLimits
from zcbench.risk import LIMIT_NOT_REACHED
from zcbench.strategy import Context, Outcome, encode_context
from zcbench.venue.orders import signal_of_cl_ord_id

__all__ = ["FeedbackBuilder", "check_journal", "limits_pairs"]

_STATUS: Final = {
    "order": "sent",
    "reject": "refused",
    "ack": "acked",
    "fill": "filled",
    "cancel": "cancelled",
    "expire": "expired",
}


def _status_of(row: Mapping[str, Any]) -> str:
    """The outcome status of a journal row: a paper IOC that found no price inside its limit
    is journaled as a reject but is no refusal (``expired``)."""
    status = _STATUS[str(row["event"])]
    if status == "refused" and row["control"] == LIMIT_NOT_REACHED:
        return "expired"
    return status


def limits_pairs(limits: RiskLimits) -> tuple[tuple[str, int], ...]:
    """The limits in force as sorted ``(name, int)`` pairs."""
    return tuple(
        sorted((f.name, int(getattr(limits, f.name))) for f in dataclasses.fields(limits))
    )


class FeedbackBuilder:
    """Builds each batch's feedback from the rows the execution layer journaled since the last."""

    def __init__(self, execution: ExecutionLayer) -> None:
        self.execution = execution
        self._next_row = 0
        self._signal_of: dict[int, int] = {}  # batch seq: signal position of its last order row
        self._orders_of: dict[int, int] = {}  # batch seq: order rows seen
        # the limits' pairs, made again only when the execution layer holds other limits
        # (RiskLimits is frozen): reading and sorting its fields cost ~3 us a context
        self._limits: tuple[RiskLimits, tuple[tuple[str, int], ...]] | None = None

    def take(self, seq: int) -> bytes | None:
        """The encoded context for batch ``seq``, or None when nothing happened since the last."""
        context = self.take_context(seq)
        return None if context is None else encode_context(context)

    def take_context(self, seq: int) -> Context | None:
        """:meth:`take`'s context before its encoding (None when nothing happened)."""
        if self.execution.journal_rows() == self._next_row:  # most batches: cheap
            return None
        rows = self.execution.rows_since(self._next_row)
        self._next_row += len(rows)
        outcomes = tuple(self._outcome(row) for row in rows)
        positions = tuple(sorted((s, q) for s, q in self.execution.positions.items() if q))
        return Context(seq, outcomes, positions, self._limits_pairs())

    def _limits_pairs(self) -> tuple[tuple[str, int], ...]:
        limits = self.execution.limits
        if self._limits is None or self._limits[0] is not limits:
            self._limits = (limits, limits_pairs(limits))
        return self._limits[1]

    def _outcome(self, row: Mapping[str, Any]) -> Outcome:
        batch = int(row["seq"])
        if row["event"] == "order":
            k = self._orders_of.get(batch, 0)
            self._orders_of[batch] = k + 1
            self._signal_of[batch] = k
        k = _position_in(str(row["cl_ord_id"]), self._signal_of.get(batch, 0))
        status = _status_of(row)
        reason = str(row["reason"])[:256]
        limit = str(row["control"]) if status == "refused" else ""
        price = row["price_ticks"] if status == "filled" else None
        return Outcome(
            batch=batch,
            signal=k,
            symbol=str(row["symbol"]),
            status=status,
            quantity=int(row["quantity"]),
            limit=limit,
            price=int(price) if price is not None else None,
            reason=reason,
        )


def _position_in(cl_ord_id: str, default: int) -> int:
    """The signal position in a ClOrdID ``<prefix>-<batch seq>-<position>`` (else ``default``)."""
    named = signal_of_cl_ord_id(cl_ord_id)
    return default if named is None else named[2]


def _row_matches(row: Mapping[str, Any], o: Outcome) -> bool:
    status = _status_of(row)
    price = row["price_ticks"] if status == "filled" else None
    return (
        row["seq"] == o.batch
        and row["symbol"] == o.symbol
        and status == o.status
        and row["quantity"] == o.quantity
        and price == o.price
        and str(row["reason"])[:256] == o.reason
    )


def check_journal(run_dir: Path) -> list[str]:
    """The discrepancies between ``run_dir``'s ``journal.jsonl`` and the outcomes signed in its
    log's feedback IN records, row by row (empty: they agree; also empty for a run that logged
    no feedback). A row that differs from its signed outcome is named as edited, a signed
    outcome with no row as deleted, a row with no signed outcome as added."""
    from zcbench.auditlog.frame import iter_records
    from zcbench.host.execution import read_journal
    from zcbench.strategy import decode_context, is_context

    outcomes: list[Outcome] = []
    fed = False
    for record, _ in iter_records(run_dir):
        if record.kind == "in" and is_context(record.body):
            fed = True
            outcomes.extend(decode_context(record.body, seq=record.batch_seq).outcomes)
    if not fed:
        return []
    rows = read_journal(run_dir).rows.to_dicts()
    problems: list[str] = []
    i = j = 0  # journal row, signed outcome
    while i < len(rows) or j < len(outcomes):
        if i < len(rows) and j < len(outcomes) and _row_matches(rows[i], outcomes[j]):
            i, j = i + 1, j + 1
            continue
        if j < len(outcomes) and (i >= len(rows) or (
            i + 1 <= len(rows) and i < len(rows) and j + 1 < len(outcomes)
            and _row_matches(rows[i], outcomes[j + 1])
        )):
            o = outcomes[j]
            problems.append(
                f"journal row {i + 1} deleted: signed outcome {j + 1} ({o.status} {o.quantity} "
                f"{o.symbol}, batch {o.batch}) has no row"
            )
            j += 1
            continue
        if i < len(rows) and (j >= len(outcomes) or (
            i + 1 < len(rows) and _row_matches(rows[i + 1], outcomes[j])
        )):
            r = rows[i]
            problems.append(
                f"journal row {i + 1} added: {r['event']} {r['quantity']} {r['symbol']} "
                f"(batch {r['seq']}) is in no signed feedback record"
            )
            i += 1
            continue
        r = rows[i]
        problems.append(
            f"journal row {i + 1} edited: {r['event']} {r['quantity']} {r['symbol']} (batch "
            f"{r['seq']}) differs from signed outcome {j + 1}"
        )
        i, j = i + 1, j + 1
    return problems
