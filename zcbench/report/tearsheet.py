"""The LP report's verified tear sheet: the run's performance recomputed from its signed log.

The figures are :mod:`zcbench.evidence.tearsheet`'s, from the same inputs the evidence pack uses
(:func:`zcbench.evidence.collect_evidence`: the journal's fills whose signal is in the verified
signed log, marked at the logged prices), never the figures in ``summary.json``. When the
build's commitment carries ``research`` (``zcbench package --research``), the section shows the
number of trials behind the committed parameters, the deflated Sharpe ratio the research
committed for them, and the live run's per-batch Sharpe deflated over the same trials (with the
research's variance of trial Sharpe ratios). Beside the live figures, the backtest over the
same logged batches (:func:`zcbench.evidence.tearsheet.run_backtest_sheet`: the signed signals
filled by the backtest's rule) with returns, drawdown, Sharpe, exposure and turnover side by
side, and both equity curves in one plot. A run whose log does not verify gets no figures.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from zcbench.errors import ZcbenchError
from zcbench.report import html as h

if TYPE_CHECKING:
    from zcbench.evidence.tearsheet import TearSheet
    from zcbench.report._lp import LPReport

__all__ = ["backtest_tear_sheet", "equity_svg", "tear_sheet_html", "verified_tear_sheet"]

BACKTEST_INK = "#0969da"


def _research(commitment: Mapping[str, Any]) -> Mapping[str, Any] | None:
    research = commitment.get("research")
    return research if isinstance(research, dict) else None


def verified_tear_sheet(report: LPReport) -> TearSheet | None:
    """The tear sheet of ``report``'s run recomputed from its signed log (deflated over the
    committed research trials when there are any); None when the log did not verify."""
    from zcbench.evidence import collect_evidence
    from zcbench.evidence.tearsheet import (
        DEFAULT_CAPITAL_TICKS,
        carried_positions,
        marks_by_batch,
        run_money,
        signed_fills,
        tear_sheet,
    )

    if report.log is None or not report.log.verified:
        return None
    trust: str | pathlib.Path = (report.trust if report.trust in ("aws", "dev")
                                 else pathlib.Path(report.trust))
    evidence = collect_evidence([report.run_dir], trust=trust)
    if not evidence.runs[0].verified:
        return None
    import polars as pl

    from zcbench.auditlog import events_frame

    events = events_frame(report.run_dir)
    ends = (events.group_by("seq").agg(pl.col("ts").max().cast(pl.Int64).alias("end_ns"))
            if events.height else pl.DataFrame(schema={"seq": pl.Int64, "end_ns": pl.Int64}))
    fills = signed_fills(evidence.tables["orders"], ends)
    research = _research(report.commitment)
    trials = None
    variance = 0.0
    if research is not None and type(research.get("n_trials")) is int:
        trials = int(research["n_trials"])
        raw = research.get("trials_sharpe_variance")
        variance = float(raw) if isinstance(raw, (int, float)) and raw >= 0 else 0.0
    return tear_sheet(fills, marks_by_batch(events), ends, capital_ticks=DEFAULT_CAPITAL_TICKS,
                      trials=trials, trial_sharpe_variance=variance,
                      carried=carried_positions(report.run_dir),
                      account=run_money(report.run_dir))


def backtest_tear_sheet(report: LPReport) -> TearSheet | None:
    """The backtest over ``report``'s logged batches (the signed signals, the backtest's fill
    rule), measured like the live sheet; None when the log did not verify."""
    from zcbench.evidence.tearsheet import DEFAULT_CAPITAL_TICKS, run_backtest_sheet

    if report.log is None or not report.log.verified:
        return None
    return run_backtest_sheet(report.run_dir, capital_ticks=DEFAULT_CAPITAL_TICKS)


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def equity_svg(equity: tuple[int, ...], *, width: int = 640, height: int = 160,
               backtest: tuple[int, ...] = ()) -> str:
    """An inline SVG line of equity after each batch (no plotting library: the report imports
    none), and with ``backtest`` the backtest's equity over the same batches as a second,
    dashed line on the same scale; empty for fewer than two points."""
    if len(equity) < 2:
        return ""
    both = (*equity, *backtest)
    low, high = min(both), max(both)
    span = (high - low) or 1

    def line(series: tuple[int, ...], colour: str, dash: str) -> str:
        step = (width - 2) / (len(series) - 1)
        points = " ".join(f"{1 + i * step:.1f},{1 + (height - 2) * (high - v) / span:.1f}"
                          for i, v in enumerate(series))
        return (f'<polyline fill="none" stroke="{colour}" stroke-width="1.5"{dash} '
                f'points="{points}"/>')

    second = (line(backtest, BACKTEST_INK, ' stroke-dasharray="4 3"')
              if len(backtest) >= 2 else "")
    label = ("equity after each logged batch, live (solid) and backtest (dashed)" if second
             else "equity after each logged batch")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="{label}">'
            f'<rect width="{width}" height="{height}" fill="#f6f8fa"/>'
            f'{line(equity, h.INK, "")}{second}</svg>')


def _money(sheet: TearSheet, amount: int, *, signed: bool = False) -> str:
    """``amount`` of ``sheet``'s money in the run's own currency and unit."""
    from zcbench.money import format_money

    return format_money(amount, signed=signed, scale=sheet.money_scale, currency=sheet.currency)


def _side_by_side(live: TearSheet, backtest: TearSheet) -> str:
    """Live and backtest figures over the same logged batches, one row per figure."""
    rows = [
        ("PnL", _money(live, live.pnl_ticks, signed=True),
         _money(backtest, backtest.pnl_ticks, signed=True)),
        ("total return", _pct(live.total_return), _pct(backtest.total_return)),
        ("max drawdown", _pct(live.max_drawdown), _pct(backtest.max_drawdown)),
        ("Sharpe ratio (annualised)", f"{live.sharpe:.3f}", f"{backtest.sharpe:.3f}"),
        ("exposure", _pct(live.exposure), _pct(backtest.exposure)),
        ("turnover", f"{live.turnover:.4f}", f"{backtest.turnover:.4f}"),
        ("fills", f"{live.n_fills:,}", f"{backtest.n_fills:,}"),
    ]
    return h.table(["figure", "live (verified fills)", "backtest (same logged batches)"],
                   [[h.esc(c) for c in row] for row in rows])


def tear_sheet_html(report: LPReport) -> str:
    """The section's HTML: the recomputed figures, and the research behind the parameters."""
    try:
        sheet = verified_tear_sheet(report)
    except ZcbenchError as exc:
        return h.notice(f"The tear sheet could not be recomputed: {exc}", h.RED)
    if sheet is None:
        return h.notice("No tear sheet: the run's signed log did not verify, so no figure of "
                        "it can be shown as verified.", h.RED)
    pairs = [
        ("capital measured against", h.esc(_money(sheet, sheet.capital_ticks))),
        ("PnL (from the signed log)", h.esc(_money(sheet, sheet.pnl_ticks, signed=True))),
        ("total return", h.esc(_pct(sheet.total_return))),
        ("volatility (annualised)", h.esc(_pct(sheet.volatility))),
        ("Sharpe ratio (annualised)", h.esc(f"{sheet.sharpe:.3f}")),
        ("Sharpe ratio per batch", h.esc(f"{sheet.sharpe_per_batch:.4f}")),
        ("Sortino ratio", h.esc(f"{sheet.sortino:.3f}")),
        ("max drawdown", h.esc(_pct(sheet.max_drawdown))),
        ("max drawdown duration", h.esc(f"{sheet.max_drawdown_duration_s:.1f} s")),
        ("exposure (batches with a position)", h.esc(_pct(sheet.exposure))),
        ("turnover", h.esc(f"{sheet.turnover:.4f}")),
        ("batches / verified fills", h.esc(f"{sheet.n_batches:,} / {sheet.n_fills:,}")),
    ]
    research = _research(report.commitment)
    if research is None:
        pairs.append(("research trials", "not committed (no research record was packaged): "
                      "the deflated Sharpe below is against zero, over one trial"))
    else:
        committed = research.get("deflated_sharpe")
        pairs += [
            ("research trials", h.esc(f"{research.get('n_trials')} backtests behind the "
                                      "committed parameters")),
            ("deflated Sharpe ratio (research, committed)",
             h.esc(f"{committed:.3f}" if isinstance(committed, float) else "n/a")),
        ]
    pairs.append((
        "deflated Sharpe ratio (this run)" if research is not None else "probabilistic Sharpe",
        h.esc("n/a (under 3 batches)" if sheet.deflated_sharpe is None
              else f"{sheet.deflated_sharpe:.3f}")))
    note = ("Recomputed by the verifier from the fills whose signals are in the signed log, "
            "marked at the logged prices, with the backtest's metric formulas; 'zcbench "
            "evidence RUN_DIR --out DIR' writes the same figures, and 'zcbench evidence verify "
            "DIR' rebuilds them.")
    try:
        backtest = backtest_tear_sheet(report)
    except ZcbenchError as exc:
        backtest = None
        note += f" The backtest over the logged batches could not be computed: {exc}."
    plot = equity_svg(sheet.equity_ticks,
                      backtest=backtest.equity_ticks if backtest is not None else ())
    caption = (h.notice(f"Equity after each of the {sheet.n_batches:,} logged batches, from "
                        f"{_money(sheet, min(sheet.equity_ticks))} to "
                        f"{_money(sheet, max(sheet.equity_ticks))}"
                        + ("; dashed: the backtest over the same batches." if backtest
                           is not None else ".")) if plot else "")
    compare = ""
    if backtest is not None:
        compare = (h.heading("Live beside the backtest over the same logged batches")
                   + _side_by_side(sheet, backtest)
                   + h.notice("The backtest fills the signals the signed log carries by the "
                              "backtest's rule (the next event after the batch, no slippage "
                              "or fee) with the same capital: the difference is what "
                              "execution cost or gained."))
    return h.facts(pairs) + plot + caption + compare + h.notice(note)
