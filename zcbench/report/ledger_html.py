"""The strategy's ledger as HTML, shared by the LP report and the attestation panel: which
PCR0 was live when, announced when, valid from, revoked; which runs ran under which PCR0; and
whether this run's run-start and run-end are in the ledger.

It renders :class:`zcbench.ledger.history.LedgerHistory` and, for one run,
:class:`zcbench.ledger.runs.RunLedgerReport`; the verdicts are the ledger verifier's.
"""

from __future__ import annotations

import datetime as dt

from zcbench.ledger.history import LedgerHistory
from zcbench.ledger.runs import RunLedgerReport
from zcbench.report import html as h

__all__ = ["ledger_html"]


def _at(ns: int | None) -> str:
    if ns is None:
        return "—"
    return h.when(dt.datetime.fromtimestamp(ns / 1e9, dt.UTC))


def _short(pcr0: bytes) -> str:
    return pcr0.hex()[:16] + "…"


def _live(periods: tuple[tuple[int, int | None], ...]) -> str:
    if not periods:
        return "never"
    return "<br>".join(f"{_at(start)} → {'now' if end is None else _at(end)}"
                       for start, end in periods)


def ledger_html(history: LedgerHistory, run: RunLedgerReport | None = None,
                run_origin: str | None = None) -> str:
    """The ledger's verdict, its versions, its runs (the row of ``run_origin`` marked) and this
    run: held to the ledger when ``run`` is given, else whether the ledger holds run-start and
    run-end entries of ``run_origin``."""
    colour = h.GREEN if history.ok else h.RED
    verdict = "VERIFIED" if history.ok else f"FAILED ({history.failed})"
    pairs = [
        ("ledger", f'<b style="color:{colour}">{h.esc(verdict)}</b> · {h.esc(history.message)}'),
        ("origin", h.mono(history.origin or "—")),
        ("entries", h.esc(f"{history.size:,}")),
    ]
    if run is not None:
        held = h.GREEN if run.ok else h.RED
        start = "—" if run.start_index is None else f"entry {run.start_index}"
        end = "not in the ledger" if run.end_index is None else f"entry {run.end_index}"
        pairs += [
            ("this run", f'<b style="color:{held}">{"HELD" if run.ok else "NOT HELD"}</b> · '
                         f"{h.esc(run.message)}"),
            ("its run-start", h.esc(start)),
            ("its run-end", h.esc(end)),
        ]
    elif run_origin is not None:
        row = history.run(run_origin)
        pairs += [
            ("this run", h.mono(run_origin)),
            ("its run-start", h.esc("not in the ledger: a run the ledger does not hold"
                                    if row is None else f"entry {row.start_index}")),
            ("its run-end", h.esc("not in the ledger" if row is None or row.end_index is None
                                  else f"entry {row.end_index}")),
        ]
    pairs += [("warning", h.esc(w)) for w in history.warnings]
    if run is not None:
        pairs += [("warning", h.esc(w)) for w in run.warnings if w not in history.warnings]
    rows = [
        [h.mono(_short(v.pcr0)), h.esc(v.index), _at(v.announced_ns), _at(v.valid_from_ns),
         h.esc(h.duration(dt.timedelta(microseconds=v.notice_ns / 1000))),
         _at(v.revoked_ns), _live(v.live)]
        for v in history.versions
    ]
    versions = h.table(["PCR0", "entry", "announced", "valid from", "notice", "revoked",
                        "live (newest allowed)"], rows, mono_columns=(0,), nowrap_columns=(2, 3, 5))
    mine = "#fff8c5"
    runs = h.table(
        ["run origin", "PCR0", "started", "ended", "entries"],
        [[h.mono(r.origin), h.mono(_short(r.pcr0)), _at(r.started_ns), _at(r.ended_ns),
          h.esc(f"{r.start_index}" + ("" if r.end_index is None else f"..{r.end_index}"))]
         for r in history.runs],
        mono_columns=(0, 1), nowrap_columns=(2, 3),
        row_colours=[mine if r.origin == run_origin else None for r in history.runs])
    return (h.facts(pairs) + h.heading("Versions (PCR0 announcements)") + versions
            + h.heading("Runs, and the PCR0 each ran under") + runs)
