"""Risk limits and controls as signed records: what was in force, and every change by whom.

RTS 6 Art. 15 asks for the pre-trade limits and every change to them, kill-switch events and
re-enables by designated staff; MiFID II Art. 17 for the trading parameters on request. A live
run logs, as ``note`` records of its signed log (body: a canonical CBOR map, ``note`` =
:data:`CONTROL_NOTE`):

* ``start``: the limits in force when the run starts (before its first batch), and who started it
* ``set``: a change of one or more limits by a named operator (old and new values)
* ``kill``: the kill switch engaged by a named operator, with the reason given
* ``enable``: the kill switch released (trading re-enabled) by a named operator

A change reaches a running run only through its control socket (``zcbench limits set``,
``zcbench kill``, ``zcbench enable``; :mod:`zcbench.serve.control`), and it is in force only once
its record is durable under a verified checkpoint: from the next batch acted on. The record's
position in the log is the change's place between batches; its time is the enclave's stamp.

:func:`control_history` reads the records back and holds the journal to them: every refusal that
names a limit's value must name the value in force, no order may fill while the kill switch was
in force, a fill may not take a position past the logged limit, and ``summary.json``'s limits (if
recorded) must equal the last logged ones. Anything else is a limit change not made through the
logged command, and is flagged. The operator's name is the one given to the command, by a user
who can reach the run's owner-only control folder; it is recorded, not authenticated further.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from zcbench import _cbor
from zcbench.errors import DataError, UsageError
from zcbench.host.execution import RiskLimits

__all__ = [
    "CONTROL_ACTIONS",
    "CONTROL_NOTE",
    "ControlEvent",
    "ControlHistory",
    "ControlRecord",
    "apply_control",
    "control_history",
    "decode_control",
    "encode_control",
    "is_control",
    "limits_of",
    "parse_assignments",
]

CONTROL_NOTE: Final = "zcbench.control/1"
CONTROL_ACTIONS: Final = ("start", "set", "kill", "enable")
_MAX_BYTES: Final = 4096
_MAX_OPERATOR: Final = 64
_MAX_REASON: Final = 256
_KEYS: Final = frozenset({"note", "action", "operator", "requested_ns", "old", "new", "reason"})
_OPERATOR: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")
_FIELDS: Final = tuple(f.name for f in dataclasses.fields(RiskLimits))


def limits_of(limits: RiskLimits) -> dict[str, int]:
    """Every limit as ``name: int`` (the kill switch 0 or 1)."""
    return {name: int(getattr(limits, name)) for name in _FIELDS}


def _limits_from(values: Mapping[str, int]) -> RiskLimits:
    kwargs: dict[str, Any] = dict(values)
    kwargs["kill_switch"] = bool(kwargs.get("kill_switch", 0))
    return RiskLimits(**kwargs)


@dataclass(frozen=True, slots=True)
class ControlRecord:
    """One control record's content. ``old`` is empty for ``start``; ``new`` holds every limit
    after the action; ``requested_ns`` is when the host took the request (its clock)."""

    action: str
    operator: str
    requested_ns: int
    old: Mapping[str, int]
    new: Mapping[str, int]
    reason: str = ""

    def __post_init__(self) -> None:
        if self.action not in CONTROL_ACTIONS:
            raise UsageError(f"control action {self.action}: one of {', '.join(CONTROL_ACTIONS)}")
        if not isinstance(self.operator, str) or not _OPERATOR.match(self.operator):
            shown = "".join(c if c.isprintable() else "?" for c in str(self.operator)[:80])
            raise UsageError(f"operator {shown}: give a name of 1 to {_MAX_OPERATOR} "
                             "letters, digits, spaces or ._@- (who made the change)")
        if not isinstance(self.reason, str) or len(self.reason) > _MAX_REASON or any(
                ord(c) < 32 for c in self.reason):
            raise UsageError(f"a reason is one line of at most {_MAX_REASON} characters")
        if type(self.requested_ns) is not int or not 0 <= self.requested_ns < 2**63:
            raise UsageError("requested_ns must be a non-negative int64")

    def changed(self) -> dict[str, tuple[int | None, int]]:
        """The limits this record changes: ``name: (old, new)`` (every limit for ``start``)."""
        return {k: (self.old.get(k), v) for k, v in sorted(self.new.items())
                if self.old.get(k) != v}


def encode_control(record: ControlRecord) -> bytes:
    """The note body of ``record`` (canonical CBOR)."""
    return _cbor.encode_canonical({
        "note": CONTROL_NOTE, "action": record.action, "operator": record.operator,
        "requested_ns": record.requested_ns, "old": dict(record.old), "new": dict(record.new),
        "reason": record.reason})


def is_control(body: bytes) -> bool:
    """Whether a note body claims to be a control record (:func:`decode_control` checks it)."""
    return len(body) <= _MAX_BYTES and CONTROL_NOTE.encode() in body


def _limits_map(doc: Any, what: str, *, empty: bool) -> dict[str, int]:
    if not isinstance(doc, dict) or (not doc and not empty):
        raise DataError(f"control record: {what} is not a map of limits")
    if doc and set(doc) != set(_FIELDS):
        raise DataError(f"control record: {what} names {sorted(doc)}, expected {list(_FIELDS)}")
    for name, value in doc.items():
        if type(value) is not int or not 0 <= value < 2**63:
            raise DataError(f"control record: {what}.{name} is not a non-negative int")
    if doc:
        try:
            _limits_from(doc)
        except UsageError as exc:
            raise DataError(f"control record: {what}: {exc}") from None
    return dict(doc)


def decode_control(body: bytes) -> ControlRecord:
    """The control record in a note body; :class:`DataError` unless it is one, exactly
    canonical, every field present and in bounds."""
    try:
        doc = _cbor.decode(bytes(body), canonical=True, max_depth=3, max_bytes=_MAX_BYTES)
    except _cbor.CborError as exc:
        raise DataError(f"control record: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != _KEYS or doc["note"] != CONTROL_NOTE:
        raise DataError(f"control record: a map with exactly {sorted(_KEYS)} and note "
                        f"{CONTROL_NOTE!r} expected")
    for name in ("action", "operator", "reason"):
        if not isinstance(doc[name], str):
            raise DataError(f"control record: {name} is not text")
    old = _limits_map(doc["old"], "old", empty=doc["action"] == "start")
    new = _limits_map(doc["new"], "new", empty=False)
    if (doc["action"] == "start") != (not old):
        raise DataError("control record: a start record has no old limits, a change has them")
    try:
        return ControlRecord(doc["action"], doc["operator"], doc["requested_ns"], old, new,
                             doc["reason"])
    except UsageError as exc:
        raise DataError(f"control record: {exc}") from None


def parse_assignments(pairs: Sequence[str]) -> dict[str, int]:
    """``["max_position=500", ...]`` as ``{name: value}``; a usage error naming the limits."""
    out: dict[str, int] = {}
    settable = [n for n in _FIELDS if n != "kill_switch"]
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in settable:
            raise UsageError(f"{pair}: give LIMIT=VALUE with LIMIT one of "
                             f"{', '.join(settable)} (the kill switch: zcbench kill / enable)")
        try:
            out[name] = int(value.strip().replace("_", ""))
        except ValueError:
            raise UsageError(f"{pair}: the value must be a whole number") from None
        if out[name] < 0:
            raise UsageError(f"{pair}: a limit is never negative")
    if not out:
        raise UsageError("give at least one LIMIT=VALUE")
    return out


def apply_control(current: RiskLimits, action: str, *, operator: str, requested_ns: int,
                  values: Mapping[str, int] | None = None,
                  reason: str = "") -> tuple[ControlRecord, RiskLimits]:
    """The record of ``action`` on ``current`` and the limits after it (nothing applied here)."""
    old = limits_of(current)
    new = dict(old)
    if action == "set":
        if not values:
            raise UsageError("a limit change names at least one LIMIT=VALUE")
        unknown = set(values) - set(_FIELDS) | ({"kill_switch"} & set(values))
        if unknown:
            raise UsageError(f"cannot set {', '.join(sorted(unknown))} with limits set (the kill "
                             "switch: zcbench kill / enable)")
        new.update(values)
    elif action in ("kill", "enable"):
        new["kill_switch"] = int(action == "kill")
    elif action != "start":
        raise UsageError(f"control action {action}: one of {', '.join(CONTROL_ACTIONS)}")
    after = _limits_from(new)
    record = ControlRecord(action, operator, requested_ns, {} if action == "start" else old,
                           new, reason)
    return record, after


@dataclass(frozen=True, slots=True)
class ControlEvent:
    """A control record in the log: its index, the enclave's time stamp, the record."""

    log_index: int
    time_ns: int
    record: ControlRecord


@dataclass(frozen=True)
class ControlHistory:
    """A run's control records in log order and what contradicts them (empty: nothing)."""

    events: tuple[ControlEvent, ...]
    problems: tuple[str, ...]

    def start_limits(self) -> RiskLimits | None:
        """The limits the run started under (its first control record's; None: none logged)."""
        return _limits_from(self.events[0].record.new) if self.events else None

    def in_force_at(self, log_index: int) -> dict[str, int] | None:
        """The limits in force when the record at ``log_index`` was acted on (None: unknown)."""
        current: dict[str, int] | None = None
        for event in self.events:
            if event.log_index > log_index:
                break
            current = dict(event.record.new)
        return current


def _journal_problems(history: ControlHistory, run_dir: Path) -> list[str]:
    from zcbench.host.execution import read_journal

    if not (run_dir / "journal.jsonl").is_file():
        return []
    problems: list[str] = []
    for n, row in enumerate(read_journal(run_dir).rows.iter_rows(named=True), start=1):
        limits = history.in_force_at(int(row["log_index"]))
        if limits is None:
            continue
        # a refusal names its control and the value of the limit in force (zcbench.risk)
        name, stated = str(row["control"]), row["limit_value"]
        if row["event"] == "reject":
            if name == "kill_switch":
                if not limits["kill_switch"]:
                    problems.append(
                        f"journal row {n} (log index {row['log_index']}) was refused by a kill "
                        "switch the log does not show engaged: engaged outside the logged command")
            elif name in limits and stated is not None and int(stated) != limits[name]:
                problems.append(
                    f"journal row {n} (log index {row['log_index']}) was refused under "
                    f"{name} = {stated}, but the logged limit in force was "
                    f"{limits[name]}: a limit change not made through the logged command")
        elif row["event"] == "fill":
            if limits["kill_switch"]:
                problems.append(
                    f"journal row {n} (log index {row['log_index']}) filled while the logged "
                    "kill switch was engaged: trading re-enabled outside the logged command")
            after = row["position_after"]
            # a paper fill only: a venue's resting orders may fill together past the limit
            # each was checked against when it was placed
            if (not row["cl_ord_id"] and after is not None
                    and abs(int(after)) > limits["max_position"]):
                problems.append(
                    f"journal row {n} (log index {row['log_index']}) took {row['symbol']} to "
                    f"{after}, past the logged max_position {limits['max_position']}")
    return problems


def control_history(run_dir: Path, summary: Mapping[str, Any] | None = None) -> ControlHistory:
    """The control records of ``run_dir``'s log (unverified here: the caller verifies the log)
    and every contradiction of them (module docstring). ``summary``: the run's ``summary.json``,
    whose ``risk_limits`` must equal the last logged limits."""
    from zcbench.auditlog import RecordFilter
    from zcbench.auditlog.frame import iter_records

    events: list[ControlEvent] = []
    problems: list[str] = []
    for record, _ in iter_records(Path(run_dir), RecordFilter(kinds=frozenset({"note"}))):
        if record.kind != "note" or not is_control(record.body):
            continue
        try:
            control = decode_control(record.body)
        except DataError as exc:
            problems.append(f"log index {record.index}: {exc}")
            continue
        previous = events[-1].record.new if events else None
        if control.action == "start" and events:
            problems.append(f"log index {record.index}: a second start record")
        elif control.action != "start" and previous is None:
            problems.append(f"log index {record.index}: a {control.action} record before the "
                            "start record")
        elif previous is not None and dict(control.old) != dict(previous):
            problems.append(
                f"log index {record.index}: its old limits are not the limits logged before it: "
                "a change was made outside the logged command")
        events.append(ControlEvent(record.index, record.time_ns, control))
    history = ControlHistory(tuple(events), ())
    problems += _journal_problems(history, Path(run_dir))
    recorded = (summary or {}).get("risk_limits")
    if isinstance(recorded, dict) and events and {
            k: int(v) for k, v in recorded.items() if isinstance(v, (int, bool))
    } != dict(events[-1].record.new):
        problems.append("summary.json's risk_limits differ from the last logged limits: a change "
                        "not made through the logged command")
    return ControlHistory(tuple(events), tuple(problems))
