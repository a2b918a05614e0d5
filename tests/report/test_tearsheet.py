"""The LP report's verified tear sheet, on a real local run: its PnL equals one recomputed here
from the signed log alone, the research committed with the build (trials, deflated Sharpe) is
shown and deflates the run's Sharpe, and a run whose log fails gets no figures."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.live_world import LiveWorld
from zcbench.auditlog import events_frame
from zcbench.report import collect_report, report_sections
from zcbench.report.tearsheet import backtest_tear_sheet, tear_sheet_html, verified_tear_sheet

pytestmark = pytest.mark.slow


@pytest.fixture
def world(live_world: LiveWorld) -> Path:
    """The shared run (read only: a test that changes it copies it with ``_copy``)."""
    return live_world.folder


def _copy(world: Path, to: Path, **commitment_changes: object) -> Path:
    LiveWorld(world).copy_to(to)
    commitment = json.loads((to / "build" / "commitment.json").read_text())
    for key, value in commitment_changes.items():
        if key == "pcr0":
            commitment["pcrs"]["0"] = value
        else:
            commitment[key] = value
    (to / "build" / "commitment.json").write_text(json.dumps(commitment))
    return to / "run"


def _pnl_from_the_log(run: Path) -> int:
    """Fills from the journal whose log index is an OUT record of the log, marked at each
    symbol's last logged price (trade, else quote mid): computed without the tear sheet."""
    events = events_frame(run)
    last: dict[str, int] = {}
    for symbol, price, bid, ask in events.select(
            "symbol", *(c if c in events.columns else pl.lit(None).alias(c)
                        for c in ("price", "bid", "ask"))).iter_rows():
        mark = price if price is not None else (bid + ask) // 2 if None not in (bid, ask) else None
        if mark:
            last[symbol] = mark
    cash, held = 0, {}
    for line in (run / "journal.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("event") != "fill":
            continue
        signed = row["quantity"] if row["side"] == "buy" else -row["quantity"]
        cash -= signed * row["price_ticks"]
        held[row["symbol"]] = held.get(row["symbol"], 0) + signed
    return cash + sum(q * last[s] for s, q in held.items())


def test_the_tear_sheet_of_a_local_run_is_recomputed_from_its_signed_log(
    world: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZCBENCH_HOME", str(world / "home"))
    report = collect_report(world / "run", trust="dev")
    assert report.verified
    sheet = verified_tear_sheet(report)
    assert sheet is not None
    assert sheet.n_fills > 0
    assert sheet.pnl_ticks == _pnl_from_the_log(world / "run")
    assert sheet.trials is None  # this build committed no research
    sections = report_sections(report)
    [section] = [s for s in sections if "Verified tear sheet" in s]
    assert "not committed" in section
    assert "Sharpe ratio (annualised)" in section
    assert f"{sheet.sharpe:.3f}" in section
    # money in the currency the run recorded (its synthetic symbols': USD), never "currency
    # units": the capital, the PnL, the equity range, and the run's own facts
    assert "1,000,000.00 USD" in section
    assert (sheet.currency, sheet.money_scale) == ("USD", 10_000)
    assert "currency unit" not in "".join(sections)
    # the plot: one point per logged batch, the last one the capital plus the PnL
    assert len(sheet.equity_ticks) == sheet.n_batches
    assert sheet.equity_ticks[-1] == sheet.capital_ticks + sheet.pnl_ticks
    points = section.split('points="')[1].split('"')[0].split()
    assert len(points) == sheet.n_batches
    # beside it, the backtest over the same logged batches: its figures and its dashed curve
    backtest = backtest_tear_sheet(report)
    assert backtest is not None
    assert backtest.n_batches == sheet.n_batches
    assert "Live beside the backtest over the same logged batches" in section
    assert f"{backtest.sharpe:.3f}" in section
    dashed = section.split('stroke-dasharray="4 3" points="')[1].split('"')[0].split()
    assert len(dashed) == backtest.n_batches


def test_committed_research_is_shown_and_deflates_the_run(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZCBENCH_HOME", str(world / "home"))
    plain = verified_tear_sheet(collect_report(world / "run", trust="dev"))
    research = {"n_trials": 40, "records": [{"digest": "ab" * 32, "kind": "sweep",
                                             "n_trials": 40}],
                "trials_sharpe_variance": 0.04, "deflated_sharpe": 0.4213}
    run = _copy(world, tmp_path / "research", research=research)
    report = collect_report(run, trust="dev")
    assert report.verified
    sheet = verified_tear_sheet(report)
    assert plain is not None
    assert sheet is not None
    assert sheet.trials == 40
    assert sheet.pnl_ticks == plain.pnl_ticks
    # deflating over 40 trials with their Sharpe variance lowers the run's probability
    assert plain.n_batches > 2
    assert plain.deflated_sharpe is not None
    assert sheet.deflated_sharpe is not None
    assert sheet.deflated_sharpe < plain.deflated_sharpe
    html = tear_sheet_html(report)
    assert "40 backtests behind the committed parameters" in html
    assert "0.421" in html
    assert "deflated Sharpe ratio (this run)" in html


def test_a_run_whose_log_fails_gets_no_figures(world: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZCBENCH_HOME", str(world / "home"))
    run = _copy(world, tmp_path / "bad", pcr0="ab" * 48)
    report = collect_report(run, trust="dev")
    assert not report.verified
    assert verified_tear_sheet(report) is None
    assert "No tear sheet" in tear_sheet_html(report)
